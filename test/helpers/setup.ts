// Integration tests talk to a real Docker engine and Redis; give every test a generous default.
import { jest } from "@jest/globals";

jest.setTimeout(60_000);
