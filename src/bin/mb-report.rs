use std::process::ExitCode;

fn main() -> ExitCode {
    mb::cli::main_wrapper("mb-report", mb::cmd::report::run)
}
