//! `flb-sigv4 doctor`: explains, before anything ships, what the `sigv4_http` plugin would do
//! with a Fluent Bit configuration — which properties it sees, which region, service, proxy and
//! credentials it would use and why — by running the plugin's own code (DESIGN §14).

mod args;
mod doctor;
mod fbconf;
mod report;
mod send_test;

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let opts = match args::parse(&argv) {
        Ok(args::Command::Doctor(o)) => o,
        Ok(args::Command::Help) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(args::Command::Version) => {
            println!("flb-sigv4 {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("flb-sigv4: {e}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    let envr = match doctor::environment(&opts) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("flb-sigv4: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("flb-sigv4: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let report = runtime.block_on(doctor::run(&opts, &envr));
    if opts.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("flb-sigv4: cannot render JSON: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", report.to_text(opts.verbose));
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
