use std::process::ExitCode;

fn main() -> ExitCode {
    mb::cli::main_wrapper("mb-ingest", mb::cmd::ingest::run)
}
