//! The classic `.conf` syntax, line for line as Fluent Bit's `flb_cf_fluentbit.c` reads it:
//! `#` comments, `[SECTION]` headers, indented `key value` lines (the first indented line sets
//! the indentation of the file), `[group]` keys inside a section, `@INCLUDE path` (relative paths
//! tried from the working directory, then from the main file's directory; a `*` makes it a glob
//! resolved from the main file's directory; a glob without match, a missing file or a file read
//! twice fails the whole configuration) and other `@CMD args` meta lines (`@SET k=v`).

use super::{expand_glob, Document, Origin, ParseError, Prop, Section, Syntax, FILE_LIMIT};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

struct Reader {
    /// Directory of the main file (Fluent Bit's `root_path`): relative includes at any depth
    /// are resolved from it.
    root: PathBuf,
    inodes: Vec<(u64, u64)>,
    doc: Document,
}

pub fn read(path: &Path) -> Result<Document, ParseError> {
    let root = std::fs::canonicalize(path)
        .map_err(|e| ParseError::new(path, 0, format!("cannot open the configuration: {e}")))?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut reader = Reader {
        root,
        inodes: Vec::new(),
        doc: Document {
            syntax: Syntax::Classic,
            files: Vec::new(),
            sections: Vec::new(),
            vars: Vec::new(),
            warnings: Vec::new(),
        },
    };
    reader.file(path, None)?;
    Ok(reader.doc)
}

/// Parses text that is not in a file (tests).
#[cfg(test)]
pub fn parse_str(name: &Path, text: &str) -> Result<Document, ParseError> {
    let mut reader = Reader {
        root: name.parent().map(Path::to_path_buf).unwrap_or_default(),
        inodes: Vec::new(),
        doc: Document {
            syntax: Syntax::Classic,
            files: vec![name.to_path_buf()],
            sections: Vec::new(),
            vars: Vec::new(),
            warnings: Vec::new(),
        },
    };
    reader.text(name, text)?;
    Ok(reader.doc)
}

/// `check_indent` of Fluent Bit: the line must start with the file's indentation; one more
/// level of the same width is a group's content.
fn check_indent(line: &[u8], indent: &[u8]) -> Result<usize, &'static str> {
    let level = line.iter().zip(indent).take_while(|(a, b)| a == b).count();
    if level < indent.len() {
        return Err(if line.get(level).is_some_and(|c| is_blank(*c)) {
            "inconsistent use of tab and space"
        } else {
            "indentation level is too low"
        });
    }
    let extra = line[level..].iter().take_while(|c| is_blank(**c)).count();
    if extra == 0 {
        Ok(level)
    } else if extra == level {
        Ok(level + extra)
    } else {
        Err("extra indentation level found")
    }
}

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

impl Reader {
    /// One file: `include_line` is the `@INCLUDE` that named it (`None` for the main file).
    fn file(&mut self, given: &Path, include_line: Option<&Origin>) -> Result<(), ParseError> {
        let fail = |message: String| match include_line {
            Some(at) => ParseError {
                at: at.clone(),
                message,
            },
            None => ParseError::new(given, 0, message),
        };
        if self.inodes.len() >= FILE_LIMIT {
            return Err(fail(format!("Too many config files. Limit = {FILE_LIMIT}")));
        }
        // As Fluent Bit: the path as given (from the working directory), else from the main
        // file's directory.
        let mut path = given.to_path_buf();
        let mut meta = std::fs::metadata(&path);
        if matches!(&meta, Err(e) if e.kind() == std::io::ErrorKind::NotFound)
            && include_line.is_some()
            && given.is_relative()
        {
            path = self.root.join(given);
            meta = std::fs::metadata(&path);
        }
        let meta = meta.map_err(|e| fail(format!("cannot read '{}': {e}", path.display())))?;
        let id = (meta.dev(), meta.ino());
        if self.inodes.contains(&id) {
            return Err(fail(format!(
                "[config] Read twice. path={}",
                path.display()
            )));
        }
        self.inodes.push(id);
        let bytes = std::fs::read(&path).map_err(|e| {
            fail(format!(
                "[config] I cannot open {} file ({e})",
                path.display()
            ))
        })?;
        self.doc.files.push(path.clone());
        let text = String::from_utf8_lossy(&bytes).into_owned();
        self.text(&path, &text)
    }

    fn text(&mut self, file: &Path, text: &str) -> Result<(), ParseError> {
        let mut indent: Option<Vec<u8>> = None;
        // Index in doc.sections of the section being filled, and whether a group is open.
        let mut current: Option<usize> = None;
        let mut in_group = false;
        for (n, raw) in text.split('\n').enumerate() {
            let line_no = n + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let buf = line.as_bytes();
            let err = |m: &str| ParseError::new(file, line_no, m);
            if buf.is_empty() || buf[0] == b'#' {
                continue;
            }
            if buf.len() > 9 && buf[..9].eq_ignore_ascii_case(b"@INCLUDE ") {
                let target = &line[9..];
                let at = Origin {
                    file: file.to_path_buf(),
                    line: line_no,
                };
                if target.contains('*') {
                    let pattern = if Path::new(target).is_absolute() {
                        PathBuf::from(target)
                    } else {
                        self.root.join(target)
                    };
                    let paths =
                        expand_glob(&pattern.to_string_lossy()).map_err(|m| ParseError {
                            at: at.clone(),
                            message: m,
                        })?;
                    for p in paths.iter().filter(|p| !p.is_dir()) {
                        self.file(p, Some(&at))?;
                    }
                } else {
                    self.file(Path::new(target), Some(&at))?;
                }
                continue;
            }
            if buf[0] == b'@' && buf.len() > 3 {
                // flb_cf_meta_property_add: "@CMD params"; only SET does anything.
                if let Some((cmd, params)) = line[1..].split_once(' ') {
                    if cmd.eq_ignore_ascii_case("SET") {
                        match params.split_once('=') {
                            Some((k, v)) => self.doc.vars.push((k.to_string(), v.to_string())),
                            None => self.doc.warnings.push(format!(
                                "{}:{line_no}: [meta SET] invalid parameter '{params}'",
                                file.display()
                            )),
                        }
                    }
                }
                continue;
            }
            if buf[0] == b'[' {
                let Some(end) = line.find(']') else {
                    return Err(err("bad header definition"));
                };
                if let Some(i) = current {
                    if self.doc.sections[i].props.is_empty() {
                        self.doc.warnings.push(format!(
                            "{}:{line_no}: previous section did not have keys",
                            file.display()
                        ));
                    }
                }
                self.doc.sections.push(Section {
                    kind: line[1..end].to_ascii_lowercase(),
                    at: Origin {
                        file: file.to_path_buf(),
                        line: line_no,
                    },
                    props: Vec::new(),
                });
                current = Some(self.doc.sections.len() - 1);
                in_group = false;
                continue;
            }
            let indent = indent.get_or_insert_with(|| {
                // Fluent Bit: the first character always, then every following blank.
                let mut i = 1;
                while i < buf.len() && is_blank(buf[i]) {
                    i += 1;
                }
                buf[..i].to_vec()
            });
            if indent.len() == buf.len() && buf.iter().all(|c| is_blank(*c)) {
                continue;
            }
            let level = check_indent(buf, indent).map_err(|m| {
                ParseError::new(file, line_no, format!("invalid indentation level ({m})"))
            })?;
            if level == indent.len() {
                in_group = false;
            }
            if level == buf.len() || buf[level] == b'#' {
                continue;
            }
            let rest = &line[level..];
            let Some(space) = rest.find(' ') else {
                return Err(err(
                    "undefined value - check config is in valid classic format",
                ));
            };
            let (key, value) = (&rest[..space], &rest[space + 1..]);
            if key.starts_with('[') {
                if current.is_none() {
                    return Err(err("current group don't have a parent section"));
                }
                in_group = true;
                continue;
            }
            if value.is_empty() {
                return Err(err("key has an empty value"));
            }
            let Some(i) = current else {
                return Err(err("could not allocate key value pair"));
            };
            if in_group {
                // Group content (e.g. processors) is not a property of the section.
                continue;
            }
            self.doc.sections[i].props.push(Prop {
                key: key.trim().to_ascii_lowercase(),
                value: value.trim().to_string(),
                at: Origin {
                    file: file.to_path_buf(),
                    line: line_no,
                },
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fbconf::test_dir::Dir;

    fn props(s: &Section) -> Vec<(&str, &str)> {
        s.props
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str()))
            .collect()
    }

    #[test]
    fn sections_keys_comments_and_set() {
        let doc = parse_str(
            Path::new("/x/fb.conf"),
            "# comment\n@SET REGION=eu-west-1\n[SERVICE]\n    Flush 1\n\n[OUTPUT]\r\n    Name  sigv4_http\n    # indented comment\n    Endpoint   https://e.example/x  \n    aws_region ${REGION}\n",
        )
        .expect("parses");
        assert_eq!(doc.vars, vec![("REGION".into(), "eu-west-1".into())]);
        let out: Vec<_> = doc.sections_of("output").collect();
        assert_eq!(out.len(), 1);
        assert_eq!(
            props(out[0]),
            vec![
                ("name", "sigv4_http"),
                ("endpoint", "https://e.example/x"),
                ("aws_region", "${REGION}")
            ]
        );
        assert_eq!(out[0].props[1].at.line, 9);
        assert_eq!(doc.sections_of("service").count(), 1);
    }

    #[test]
    fn errors_fluent_bit_would_refuse() {
        for (text, want) in [
            ("[OUTPUT\n    Name x\n", "bad header definition"),
            ("[OUTPUT]\n    Name\n", "undefined value"),
            ("[OUTPUT]\n    Name \n", "key has an empty value"),
            (
                "[OUTPUT]\n    Name x\n  Match *\n",
                "indentation level is too low",
            ),
            (
                "[OUTPUT]\n    Name x\n      Match *\n",
                "extra indentation level",
            ),
            ("    Name x\n", "could not allocate"),
        ] {
            let e = parse_str(Path::new("/x/a.conf"), text).expect_err(text);
            assert!(e.message.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn includes_relative_glob_and_twice() {
        let d = Dir::new("classic");
        let main = d.write(
            "main.conf",
            "@INCLUDE sub/one.conf\n@INCLUDE outputs/*.conf\n[SERVICE]\n    Flush 1\n",
        );
        d.write("sub/one.conf", "@SET A=1\n");
        d.write(
            "outputs/b.conf",
            "[OUTPUT]\n    Name sigv4_http\n    Alias b\n",
        );
        d.write(
            "outputs/a.conf",
            "[OUTPUT]\n    Name sigv4_http\n    Alias a\n",
        );
        let doc = read(&main).expect("reads");
        assert_eq!(doc.files.len(), 4, "{:?}", doc.files);
        let aliases: Vec<&str> = doc
            .sections_of("output")
            .map(|s| s.first("alias").expect("alias").value.as_str())
            .collect();
        assert_eq!(aliases, vec!["a", "b"]);
        assert_eq!(doc.vars, vec![("A".into(), "1".into())]);
        let a = doc.sections_of("output").next().expect("a");
        assert!(a.at.file.ends_with("outputs/a.conf"), "{:?}", a.at);

        // A glob without match, a missing file and a file read twice fail the configuration.
        let nomatch = d.write("nomatch.conf", "@INCLUDE none/*.conf\n");
        let e = read(&nomatch).expect_err("no match");
        assert!(e.message.contains("no match"), "{e}");
        assert_eq!(e.at.line, 1);
        let missing = d.write("missing.conf", "\n@INCLUDE nope.conf\n");
        let e = read(&missing).expect_err("missing");
        assert!(e.message.contains("nope.conf"), "{e}");
        assert_eq!(e.at.line, 2);
        let twice = d.write(
            "twice.conf",
            "@INCLUDE sub/one.conf\n@INCLUDE sub/one.conf\n",
        );
        let e = read(&twice).expect_err("twice");
        assert!(e.message.contains("Read twice"), "{e}");
    }

    #[test]
    fn nested_include_resolves_from_the_main_directory() {
        let d = Dir::new("nested");
        let main = d.write("main.conf", "@INCLUDE a/first.conf\n");
        // Relative to the main file's directory, not to a/ (Fluent Bit's root_path).
        d.write("a/first.conf", "@INCLUDE b/second.conf\n");
        d.write("b/second.conf", "[OUTPUT]\n    Name sigv4_http\n");
        let doc = read(&main).expect("reads");
        assert_eq!(doc.sections_of("output").count(), 1);
    }
}
