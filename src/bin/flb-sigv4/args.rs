//! Command-line parsing, by hand: one subcommand and eight options do not need a parser crate
//! (and its compile time on every build of this crate).

use std::path::PathBuf;

pub const USAGE: &str = "\
usage: flb-sigv4 doctor [options] [CONFIG]

Explains what the sigv4_http output plugin would do with a Fluent Bit configuration: every
[OUTPUT] with Name sigv4_http is checked with the plugin's own code (property parsing, proxy
resolution, EC2 detection, credential chain). Never prints a secret.

options:
  -c, --config FILE     Fluent Bit configuration (classic .conf or .yaml); or give it as CONFIG
  -p, --prop KEY=VALUE  one output's properties instead of a file (repeat for each property)
      --env-from-pid PID
                        use the environment of a running process (/proc/PID/environ), e.g.
                        Fluent Bit's, instead of this one's
      --hot-reload      Fluent Bit runs with --enable-hot-reload (read from the process's
                        command line with --env-from-pid)
      --send-test       send one signed request with an empty batch to each endpoint
      --record          with --send-test: send one test record instead (it is written into the
                        real destination)
      --json            print one JSON document instead of text
  -v, --verbose         more detail (repeat for even more)
  -h, --help            this text
  -V, --version         the version

exit status: 0 when every output would start (and, with --send-test, was accepted); 1 otherwise;
2 for a usage error.";

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub config: Option<PathBuf>,
    pub props: Vec<(String, String)>,
    pub env_from_pid: Option<u32>,
    pub hot_reload: bool,
    pub send_test: bool,
    pub record: bool,
    pub json: bool,
    pub verbose: u8,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Doctor(Options),
    Help,
    Version,
}

pub fn parse(args: &[String]) -> Result<Command, String> {
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("doctor") => {}
        Some("-h") | Some("--help") | Some("help") => return Ok(Command::Help),
        Some("-V") | Some("--version") => return Ok(Command::Version),
        Some(other) => return Err(format!("unknown command '{other}'")),
        None => return Err("a command is required".into()),
    }
    let mut o = Options::default();
    while let Some(arg) = it.next() {
        // --opt=value forms too
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs {what}"))
        };
        match name {
            "-h" | "--help" => return Ok(Command::Help),
            "-c" | "--config" => set_config(&mut o, value("a file")?)?,
            "-p" | "--prop" => {
                let kv = value("KEY=VALUE")?;
                let Some((k, v)) = kv.split_once('=') else {
                    return Err(format!("{name} '{kv}': expected KEY=VALUE"));
                };
                if k.trim().is_empty() {
                    return Err(format!("{name} '{kv}': the key is empty"));
                }
                o.props.push((k.trim().to_string(), v.to_string()));
            }
            "--env-from-pid" => {
                let v = value("a process id")?;
                o.env_from_pid = Some(
                    v.parse()
                        .map_err(|_| format!("--env-from-pid '{v}': not a process id"))?,
                );
            }
            "--hot-reload" => o.hot_reload = true,
            "--send-test" => o.send_test = true,
            "--record" => o.record = true,
            "--json" => o.json = true,
            "-v" | "--verbose" => o.verbose = o.verbose.saturating_add(1),
            "-vv" => o.verbose = o.verbose.saturating_add(2),
            s if s.starts_with('-') && s.len() > 1 => return Err(format!("unknown option '{s}'")),
            _ => set_config(&mut o, arg.clone())?,
        }
    }
    if o.config.is_some() && !o.props.is_empty() {
        return Err("give either a configuration file or -p properties, not both".into());
    }
    if o.config.is_none() && o.props.is_empty() {
        return Err("give a configuration file (-c FILE) or properties (-p KEY=VALUE)".into());
    }
    if o.record && !o.send_test {
        return Err("--record needs --send-test".into());
    }
    Ok(Command::Doctor(o))
}

fn set_config(o: &mut Options, path: String) -> Result<(), String> {
    if o.config.is_some() {
        return Err("only one configuration file".into());
    }
    o.config = Some(PathBuf::from(path));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn forms() {
        let Ok(Command::Doctor(o)) = p(&[
            "doctor",
            "-p",
            "endpoint=https://h/x?a=b",
            "--prop=aws_region=eu-west-1",
            "--json",
            "-vv",
            "--send-test",
            "--record",
            "--env-from-pid=42",
        ]) else {
            panic!("parses")
        };
        assert_eq!(
            o.props,
            vec![
                ("endpoint".into(), "https://h/x?a=b".into()),
                ("aws_region".into(), "eu-west-1".into())
            ]
        );
        assert!(o.json && o.send_test && o.record);
        assert_eq!(o.verbose, 2);
        assert_eq!(o.env_from_pid, Some(42));
        let Ok(Command::Doctor(o)) = p(&["doctor", "fb.conf"]) else {
            panic!("parses")
        };
        assert_eq!(o.config, Some(PathBuf::from("fb.conf")));
        assert_eq!(p(&["--help"]), Ok(Command::Help));
    }

    #[test]
    fn usage_errors() {
        for args in [
            &["doctor"][..],
            &["doctor", "a.conf", "-p", "x=y"],
            &["doctor", "-p", "novalue"],
            &["doctor", "-c"],
            &["doctor", "-c", "a", "--bogus"],
            &["doctor", "-c", "a", "--record"],
            &["doctor", "--env-from-pid", "x", "-c", "a"],
            &["nope"],
        ] {
            assert!(p(args).is_err(), "{args:?}");
        }
    }
}
