fn main() {
    let p = std::env::args().nth(1).unwrap();
    match evi_script::parse_file(std::path::Path::new(&p)) {
        Ok(s) => {
            println!("OK");
            for d in s.check(&evi_script::builtin_functions()) {
                println!("{d}");
            }
        }
        Err(ds) => {
            for d in ds {
                println!("{d}");
            }
        }
    }
}
