//! Parses and checks a config against the builtin functions, printing every diagnostic:
//! `cargo run -p evi-script --example evcheck -- path/to/evid.cfg`.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: evcheck CONFIG");
        return ExitCode::from(2);
    };
    match evi_script::parse_file(Path::new(&path)) {
        Ok(script) => {
            let errs = script.check(&evi_script::builtin_functions());
            print!("{}", evi_script::render(&errs));
            if errs.is_empty() {
                println!("{path}: OK");
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(errs) => {
            print!("{}", evi_script::render(&errs));
            ExitCode::FAILURE
        }
    }
}
