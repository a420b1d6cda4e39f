use std::process::ExitCode;

fn main() -> ExitCode {
    mb::cli::main_wrapper("mb-sample", mb::cmd::sample::run)
}
