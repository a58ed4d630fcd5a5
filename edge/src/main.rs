//! The `holdfast` binary. Everything lives in the library; see `cli.rs`.

fn main() -> std::process::ExitCode {
    holdfast::cli::main()
}
