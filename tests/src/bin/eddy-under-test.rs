//! The `eddy` server, built as part of this package so that cargo compiles it before the suites
//! and with the same features, and the suites find it beside their own executables.

fn main() -> anyhow::Result<()> {
    eddy_server::cli::main()
}
