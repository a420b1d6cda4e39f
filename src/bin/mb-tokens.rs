use std::process::ExitCode;

fn main() -> ExitCode {
    mb::cli::main_wrapper("mb-tokens", mb::cmd::tokens::run)
}
