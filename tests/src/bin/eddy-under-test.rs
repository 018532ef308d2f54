//! The `eddy` server, built as part of this package so that cargo compiles it before the suites
//! and with the same features, and the suites find it beside their own executables. Unlike
//! `eddy` it arms the fail points named in `FAILPOINTS` (see the `fail` crate), which the
//! crash suites use to stop the server at a chosen instant.

fn main() -> anyhow::Result<()> {
    let _failpoints = fail::FailScenario::setup();
    eddy_server::cli::main()
}
