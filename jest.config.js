/** ESM throughout (execa 9 is ESM-only): ts-jest's ESM mode, run with --experimental-vm-modules (see package.json). */
export default {
  testEnvironment: "node",
  extensionsToTreatAsEsm: [".ts"],
  moduleNameMapper: { "^(\\.{1,2}/.*)\\.js$": "$1" },
  transform: { "^.+\\.ts$": ["ts-jest", { useESM: true, tsconfig: "tsconfig.json" }] },
  testMatch: ["<rootDir>/test/**/*.test.ts"],
  globalSetup: "<rootDir>/test/helpers/build-once.js",
  setupFilesAfterEnv: ["<rootDir>/test/helpers/setup.ts"],
  maxWorkers: 2,
};
