use std::process::ExitCode;

fn main() -> ExitCode {
    mb::cli::main_wrapper("mb-customer", mb::cmd::customer::run)
}
