use std::process::ExitCode;

fn main() -> ExitCode {
    mb::cli::main_wrapper("mb-activity", mb::cmd::activity::run)
}
