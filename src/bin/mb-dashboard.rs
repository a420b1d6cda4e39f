use std::process::ExitCode;

fn main() -> ExitCode {
    mb::cli::main_wrapper("mb-dashboard", mb::cmd::dashboard::run)
}
