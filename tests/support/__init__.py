"""The test kit: how the tests run the CLI (cli), build its environment (env), start a sandbox (sandbox), fake a
server (faultserver, ravelstub), build container images (engine), and group tests on xdist workers (groups).
See docs/internals.md, "Tests"."""
