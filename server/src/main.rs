fn main() -> anyhow::Result<()> {
    eddy_server::cli::main()
}
