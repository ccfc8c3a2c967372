//! The YAML syntax, as Fluent Bit's `flb_cf_yaml.c` reads it: top-level `env` (a map, or a list
//! of `name`/`value`), `includes` (paths relative to the including file's directory, globs with
//! `*`), `service` and `pipeline` with `inputs`/`filters`/`outputs` lists. A list value repeats the
//! property once per item; nested maps (processors) are not properties. Keys are translated like
//! `flb_cf_key_translate`: a key starting in lowercase without `_` goes from camelCase to
//! snake_case (`hotReload` → `hot_reload`), any other key is kept as written.
//!
//! Read through the parser's event stream (as Fluent Bit reads libyaml's), so the order of keys
//! and repeated keys survive: a map type would silently keep only one of them.

use super::{expand_glob, Document, Origin, ParseError, Prop, Section, Syntax, FILE_LIMIT};
use std::path::{Path, PathBuf};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

#[derive(Debug, Clone)]
enum Node {
    Scalar(String, usize),
    Seq(Vec<Node>, usize),
    Map(Vec<(String, usize, Node)>, usize),
}

impl Node {
    fn line(&self) -> usize {
        match self {
            Node::Scalar(_, l) | Node::Seq(_, l) | Node::Map(_, l) => *l,
        }
    }
}

#[derive(Default)]
struct Events(Vec<(Event, usize)>);

impl MarkedEventReceiver for Events {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        self.0.push((ev, mark.line()));
    }
}

/// Builds nodes from the event list; `pos` advances past the node read.
fn node(events: &[(Event, usize)], pos: &mut usize, file: &Path) -> Result<Node, ParseError> {
    let Some((ev, line)) = events.get(*pos) else {
        return Err(ParseError::new(file, 0, "unexpected end of YAML"));
    };
    let line = *line;
    *pos += 1;
    match ev {
        Event::Scalar(text, ..) => Ok(Node::Scalar(text.clone(), line)),
        Event::SequenceStart(..) => {
            let mut items = Vec::new();
            while !matches!(events.get(*pos), Some((Event::SequenceEnd, _)) | None) {
                items.push(node(events, pos, file)?);
            }
            *pos += 1;
            Ok(Node::Seq(items, line))
        }
        Event::MappingStart(..) => {
            let mut entries = Vec::new();
            while !matches!(events.get(*pos), Some((Event::MappingEnd, _)) | None) {
                let key = node(events, pos, file)?;
                let Node::Scalar(k, kl) = key else {
                    return Err(ParseError::new(
                        file,
                        key.line(),
                        "a map key must be a scalar",
                    ));
                };
                let value = node(events, pos, file)?;
                entries.push((k, kl, value));
            }
            *pos += 1;
            Ok(Node::Map(entries, line))
        }
        Event::Alias(_) => Err(ParseError::new(
            file,
            line,
            "YAML aliases are not supported by Fluent Bit",
        )),
        other => Err(ParseError::new(
            file,
            line,
            format!("unexpected YAML event {other:?}"),
        )),
    }
}

fn parse_tree(file: &Path, text: &str) -> Result<Option<Node>, ParseError> {
    let mut events = Events::default();
    Parser::new_from_str(text)
        .load(&mut events, false)
        .map_err(|e| ParseError::new(file, e.marker().line(), e.info().to_string()))?;
    let start = events
        .0
        .iter()
        .position(|(e, _)| matches!(e, Event::DocumentStart));
    let Some(start) = start else { return Ok(None) };
    let mut pos = start + 1;
    if matches!(events.0.get(pos), Some((Event::DocumentEnd, _)) | None) {
        return Ok(None);
    }
    node(&events.0, &mut pos, file).map(Some)
}

/// `flb_cf_key_translate` for YAML.
pub fn translate_key(key: &str) -> String {
    let starts_lower = key.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    if !starts_lower {
        return key.to_string();
    }
    if key.contains('_') {
        return key.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(key.len() + 4);
    for (i, c) in key.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

struct Reader {
    included: Vec<PathBuf>,
    doc: Document,
}

pub fn read(path: &Path) -> Result<Document, ParseError> {
    let mut reader = Reader {
        included: Vec::new(),
        doc: Document {
            syntax: Syntax::Yaml,
            files: Vec::new(),
            sections: Vec::new(),
            vars: Vec::new(),
            warnings: Vec::new(),
        },
    };
    reader.file(path, None)?;
    Ok(reader.doc)
}

fn origin(file: &Path, line: usize) -> Origin {
    Origin {
        file: file.to_path_buf(),
        line,
    }
}

fn scalar_text(n: &Node) -> Option<&str> {
    match n {
        Node::Scalar(s, _) => Some(s),
        _ => None,
    }
}

impl Reader {
    fn file(&mut self, path: &Path, include_at: Option<&Origin>) -> Result<(), ParseError> {
        let fail = |message: String| match include_at {
            Some(at) => ParseError {
                at: at.clone(),
                message,
            },
            None => ParseError::new(path, 0, message),
        };
        if self.included.len() >= FILE_LIMIT {
            return Err(fail(format!("Too many config files. Limit = {FILE_LIMIT}")));
        }
        if self.included.iter().any(|p| p == path) {
            return Err(fail(format!(
                "[config] file '{}' is already included",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail(format!("cannot open '{}': {e}", path.display())))?;
        self.included.push(path.to_path_buf());
        self.doc.files.push(path.to_path_buf());
        self.text(path, &text)
    }

    fn text(&mut self, file: &Path, text: &str) -> Result<(), ParseError> {
        let Some(root) = parse_tree(file, text)? else {
            return Ok(());
        };
        let Node::Map(entries, _) = root else {
            return Err(ParseError::new(
                file,
                root.line(),
                "the configuration must be a map of sections (service, pipeline, …)",
            ));
        };
        for (key, line, value) in entries {
            match key.to_ascii_lowercase().as_str() {
                "env" => self.env(file, &value)?,
                "includes" => self.includes(file, line, &value)?,
                "service" => self.section(file, "service", line, &value)?,
                "pipeline" => {
                    let Node::Map(kinds, _) = &value else {
                        return Err(ParseError::new(file, line, "'pipeline' must be a map"));
                    };
                    for (kind, kline, list) in kinds {
                        let kind = match kind.to_ascii_lowercase().as_str() {
                            "inputs" => "input",
                            "filters" => "filter",
                            "outputs" => "output",
                            _ => continue,
                        };
                        let Node::Seq(items, _) = list else {
                            return Err(ParseError::new(
                                file,
                                *kline,
                                format!("'{kind}s' must be a list"),
                            ));
                        };
                        for item in items {
                            self.section(file, kind, item.line(), item)?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn env(&mut self, file: &Path, value: &Node) -> Result<(), ParseError> {
        match value {
            Node::Map(entries, _) => {
                for (k, line, v) in entries {
                    let Some(v) = scalar_text(v) else {
                        return Err(ParseError::new(
                            file,
                            *line,
                            "nested maps are not allowed in env section",
                        ));
                    };
                    self.doc.vars.push((k.clone(), v.to_string()));
                }
            }
            Node::Seq(items, _) => {
                for item in items {
                    let Node::Map(fields, line) = item else {
                        return Err(ParseError::new(
                            file,
                            item.line(),
                            "env list entries must be maps with name and value",
                        ));
                    };
                    let get = |name: &str| {
                        fields
                            .iter()
                            .find(|(k, ..)| k.eq_ignore_ascii_case(name))
                            .and_then(|(_, _, v)| scalar_text(v))
                    };
                    let Some(name) = get("name") else {
                        return Err(ParseError::new(file, *line, "env entry without name"));
                    };
                    // `uri` (file://…) entries are read by Fluent Bit at start-up.
                    let value = match (get("value"), get("uri")) {
                        (Some(v), _) => v.to_string(),
                        (None, Some(uri)) => {
                            let p = uri.strip_prefix("file://").unwrap_or(uri);
                            std::fs::read_to_string(p)
                                .map(|t| t.trim_end_matches(['\n', '\r']).to_string())
                                .map_err(|e| {
                                    ParseError::new(file, *line, format!("[env] file {p}: {e}"))
                                })?
                        }
                        (None, None) => String::new(),
                    };
                    self.doc.vars.push((name.to_string(), value));
                }
            }
            Node::Scalar(..) => {
                return Err(ParseError::new(
                    file,
                    value.line(),
                    "'env' must be a map or a list",
                ))
            }
        }
        Ok(())
    }

    fn includes(&mut self, file: &Path, line: usize, value: &Node) -> Result<(), ParseError> {
        let Node::Seq(items, _) = value else {
            return Err(ParseError::new(file, line, "'includes' must be a list"));
        };
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        for item in items {
            let Some(target) = scalar_text(item) else {
                return Err(ParseError::new(
                    file,
                    item.line(),
                    "an include must be a path",
                ));
            };
            let at = origin(file, item.line());
            let joined = if Path::new(target).is_absolute() {
                PathBuf::from(target)
            } else {
                dir.join(target)
            };
            if target.contains('*') {
                let paths = expand_glob(&joined.to_string_lossy()).map_err(|m| ParseError {
                    at: at.clone(),
                    message: format!("[config] including file '{target}': {m}"),
                })?;
                for p in paths.iter().filter(|p| !p.is_dir()) {
                    self.file(p, Some(&at))?;
                }
            } else {
                self.file(&joined, Some(&at))?;
            }
        }
        Ok(())
    }

    fn section(
        &mut self,
        file: &Path,
        kind: &str,
        line: usize,
        value: &Node,
    ) -> Result<(), ParseError> {
        let Node::Map(entries, _) = value else {
            return Err(ParseError::new(
                file,
                line,
                format!("a '{kind}' entry must be a map of properties"),
            ));
        };
        let mut props = Vec::new();
        for (k, kline, v) in entries {
            let key = translate_key(k);
            match v {
                Node::Scalar(text, _) => props.push(Prop {
                    key,
                    value: text.trim().to_string(),
                    at: origin(file, *kline),
                }),
                Node::Seq(items, _) => {
                    for item in items {
                        if let Some(text) = scalar_text(item) {
                            props.push(Prop {
                                key: key.clone(),
                                value: text.trim().to_string(),
                                at: origin(file, item.line()),
                            });
                        }
                    }
                }
                // processors and other nested blocks are not properties
                Node::Map(..) => {}
            }
        }
        self.doc.sections.push(Section {
            kind: kind.to_string(),
            at: origin(file, line),
            props,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fbconf::test_dir::Dir;

    #[test]
    fn key_translation() {
        assert_eq!(translate_key("hotReload"), "hot_reload");
        assert_eq!(translate_key("aws_region"), "aws_region");
        assert_eq!(translate_key("Aws_Region"), "Aws_Region");
        assert_eq!(translate_key("endpoint"), "endpoint");
        assert_eq!(translate_key("awsRoleArn"), "aws_role_arn");
    }

    #[test]
    fn env_includes_service_outputs() {
        let d = Dir::new("yaml");
        let main = d.write(
            "conf/main.yaml",
            "env:\n  REGION: eu-west-1\n  EP: https://e.example/x\nincludes:\n  - outputs/*.yaml\n  - more.yaml\nservice:\n  flush: 1\n  hotReload: on\npipeline:\n  inputs:\n    - name: dummy\n",
        );
        d.write(
            "conf/outputs/a.yaml",
            "pipeline:\n  outputs:\n    - name: sigv4_http\n      endpoint: ${EP}\n      aws_region: ${REGION}\n      headers: [a, b]\n      processors:\n        logs:\n          - name: x\n      endpoint: second\n",
        );
        d.write("conf/more.yaml", "env:\n  - name: EXTRA\n    value: yes\n");
        let doc = read(&main).expect("reads");
        assert_eq!(doc.files.len(), 3);
        assert_eq!(
            doc.vars,
            vec![
                ("REGION".to_string(), "eu-west-1".to_string()),
                ("EP".to_string(), "https://e.example/x".to_string()),
                ("EXTRA".to_string(), "yes".to_string()),
            ]
        );
        let service = doc.sections_of("service").next().expect("service");
        assert_eq!(
            service.first("hot_reload").map(|p| p.value.as_str()),
            Some("on")
        );
        let out: Vec<_> = doc.sections_of("output").collect();
        assert_eq!(out.len(), 1);
        let keys: Vec<(&str, &str)> = out[0]
            .props
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("name", "sigv4_http"),
                ("endpoint", "${EP}"),
                ("aws_region", "${REGION}"),
                ("headers", "a"),
                ("headers", "b"),
                ("endpoint", "second"),
            ]
        );
        assert_eq!(out[0].props[1].at.line, 4);
        assert!(out[0].at.file.ends_with("outputs/a.yaml"));
    }

    #[test]
    fn errors() {
        let d = Dir::new("yaml");
        let bad = d.write("bad.yaml", "pipeline:\n  outputs:\n    - name: [\n");
        assert!(read(&bad).is_err());
        let nested = d.write("nested.yaml", "env:\n  A:\n    b: c\n");
        let e = read(&nested).expect_err("nested env");
        assert!(e.message.contains("nested maps"), "{e}");
        let nomatch = d.write("nomatch.yaml", "includes:\n  - none/*.yaml\n");
        let e = read(&nomatch).expect_err("no match");
        assert!(e.message.contains("no match"), "{e}");
        assert_eq!(e.at.line, 2);
        let selfinc = d.write("self.yaml", "includes:\n  - self.yaml\n");
        let e = read(&selfinc).expect_err("self include");
        assert!(e.message.contains("already included"), "{e}");
    }
}
