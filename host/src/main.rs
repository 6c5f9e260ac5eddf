//! The `aimass` binary; everything lives in the library (see `aimass::cli`).

fn main() -> std::process::ExitCode {
    aimass::cli::main()
}
