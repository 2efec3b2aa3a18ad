// scripts/lib/debian-mirror.mjs: debootstrap uses the mirror the machine's apt is set up for.
// @ts-expect-error: a plain ES module of the set-up scripts, without type declarations
import { parseDeb822, parseOneLine, pickMirror } from "../../scripts/lib/debian-mirror.mjs";

describe("the Debian mirror for debootstrap", () => {
  it("takes the deb822 source of the suite's main component, not security or disabled ones", () => {
    const sources = parseDeb822(`Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main

Types: deb deb-src
URIs: http://mirror.corp.example/debian/
Suites: bookworm bookworm-updates
Components: main contrib
# a comment inside the stanza
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
`);
    expect(pickMirror(sources, "bookworm")).toBe("http://mirror.corp.example/debian");
  });

  it("reads one-line sources with options, and skips deb-src and other components", () => {
    const sources = parseOneLine(`# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb http://other.example/debian bookworm contrib
deb [arch=amd64 signed-by=/k.gpg] http://local.example/debian bookworm main non-free
`);
    expect(pickMirror(sources, "bookworm")).toBe("http://local.example/debian");
  });

  it("falls back to a Debian archive of another release, and gives up when there is none", () => {
    expect(pickMirror(parseOneLine("deb http://mirror.example/debian trixie main\n"), "bookworm")).toBe("http://mirror.example/debian");
    expect(pickMirror(parseOneLine("deb https://packages.example/apt cloud-sdk main\n"), "bookworm")).toBeNull();
    expect(pickMirror([], "bookworm")).toBeNull();
  });
});
