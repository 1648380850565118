//! The `melpipe` binary: the command of `lib.rs` with the process's arguments.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(melpipe_cli::main(std::env::args_os()))
}
