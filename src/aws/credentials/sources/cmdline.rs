//! How a `credential_process` command line is started. Like the AWS CLI (botocore splits it with
//! Python's `shlex.split` and runs the words without a shell), a line without shell syntax is
//! split into words — POSIX quoting: `'…'` literal, `"…"` with `\` escaping `\ " $ `` ` ``, a
//! backslash outside quotes escaping the next character — and executed directly, so it works in
//! the distroless Fluent Bit images, which have no `/bin/sh`. A line that needs a shell
//! (pipes, redirections, `;`, `&`, variables, globs, command substitution, assignments) is run
//! with `/bin/sh -c` when there is one. A leading unquoted `~` or `~/` is expanded with `HOME`,
//! as the shell would.

use std::path::Path;

/// How to start the command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Launch {
    /// Program and arguments, executed without a shell.
    Direct(Vec<String>),
    /// Needs `sh -c`; the text says which syntax (for the error when there is no shell).
    Shell(&'static str),
}

fn special(c: char) -> Option<&'static str> {
    Some(match c {
        '|' => "a pipe '|'",
        '&' => "'&'",
        ';' => "';'",
        '<' | '>' => "a redirection",
        '(' | ')' => "parentheses",
        '$' => "a '$' expansion",
        '`' => "a command substitution",
        '*' | '?' | '[' => "a glob pattern",
        '{' | '}' => "braces",
        '\n' | '\r' => "a line break",
        _ => return None,
    })
}

/// Decides how to run `line`; `home` expands a leading `~`.
pub(crate) fn parse(line: &str, home: Option<&Path>) -> Launch {
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    // A word is open once anything (even an empty quote pair) started it.
    let mut open = false;
    // Whether the open word so far is only unquoted characters (for `~` and `NAME=`).
    let mut plain = true;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if open {
                    words.push(std::mem::take(&mut word));
                    open = false;
                    plain = true;
                }
            }
            '\'' => {
                open = true;
                plain = false;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Launch::Shell("an unclosed quote"),
                    }
                }
            }
            '"' => {
                open = true;
                plain = false;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('\\' | '"' | '$' | '`')) => word.push(e),
                            Some('\n') => {}
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => return Launch::Shell("an unclosed quote"),
                        },
                        Some('$') => return Launch::Shell("a '$' expansion"),
                        Some('`') => return Launch::Shell("a command substitution"),
                        Some(c) => word.push(c),
                        None => return Launch::Shell("an unclosed quote"),
                    }
                }
            }
            '\\' => {
                open = true;
                plain = false;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => word.push(c),
                    None => return Launch::Shell("a trailing backslash"),
                }
            }
            '#' | '!' if !open => return Launch::Shell("'#' or '!' starting a word"),
            '~' if !open => {
                open = true;
                match chars.peek() {
                    None | Some(' ' | '\t' | '/') => match home {
                        Some(h) => word.push_str(&h.to_string_lossy()),
                        None => return Launch::Shell("'~' (and HOME is not set)"),
                    },
                    Some(_) => return Launch::Shell("'~user'"),
                }
            }
            '=' if plain && words.is_empty() && is_name(&word) => {
                return Launch::Shell("a variable assignment")
            }
            c => {
                if let Some(what) = special(c) {
                    return Launch::Shell(what);
                }
                open = true;
                word.push(c);
            }
        }
    }
    if open {
        words.push(word);
    }
    if words.is_empty() || words[0].is_empty() {
        return Launch::Shell("no program name");
    }
    Launch::Direct(words)
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(line: &str) -> Vec<String> {
        match parse(line, Some(Path::new("/home/u"))) {
            Launch::Direct(w) => w,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn shell(line: &str) -> &'static str {
        match parse(line, Some(Path::new("/home/u"))) {
            Launch::Shell(why) => why,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn splits_like_shlex() {
        assert_eq!(
            direct("/bin/helper --profile prod"),
            ["/bin/helper", "--profile", "prod"]
        );
        assert_eq!(direct("  a   b\tc  "), ["a", "b", "c"]);
        assert_eq!(
            direct(r#"helper "two words" 'it''s' x"y"z"#),
            ["helper", "two words", "its", "xyz"]
        );
        assert_eq!(
            direct(r#"helper "a \"q\" \\ \n" 'lit\eral'"#),
            ["helper", r#"a "q" \ \n"#, r"lit\eral"]
        );
        assert_eq!(direct(r"helper a\ b \$HOME"), ["helper", "a b", "$HOME"]);
        assert_eq!(direct("helper '' x"), ["helper", "", "x"]);
        assert_eq!(
            direct("helper --opt=value a=b"),
            ["helper", "--opt=value", "a=b"]
        );
        assert_eq!(
            direct("helper 'a|b;c&d>e $f `g` *'"),
            ["helper", "a|b;c&d>e $f `g` *"]
        );
        assert_eq!(direct("helper x#y"), ["helper", "x#y"]);
        assert_eq!(
            direct("~/bin/helper ~ a~b '~'"),
            ["/home/u/bin/helper", "/home/u", "a~b", "~"]
        );
    }

    #[test]
    fn shell_syntax_is_recognised() {
        assert_eq!(shell("helper | jq ."), "a pipe '|'");
        assert_eq!(shell("a; b"), "';'");
        assert_eq!(shell("a && b"), "'&'");
        assert_eq!(shell("helper > out"), "a redirection");
        assert_eq!(shell("helper 2>/dev/null"), "a redirection");
        assert_eq!(shell("helper $HOME"), "a '$' expansion");
        assert_eq!(shell(r#"helper "$HOME""#), "a '$' expansion");
        assert_eq!(shell("helper `id`"), "a command substitution");
        assert_eq!(shell("helper *.json"), "a glob pattern");
        assert_eq!(shell("FOO=1 helper"), "a variable assignment");
        assert_eq!(shell("helper 'unclosed"), "an unclosed quote");
        assert_eq!(shell("helper # comment"), "'#' or '!' starting a word");
        assert_eq!(shell("a\nb"), "a line break");
        assert_eq!(shell("~root/helper"), "'~user'");
        assert_eq!(shell(""), "no program name");
        assert_eq!(shell("'' x"), "no program name");
        assert_eq!(
            parse("~/x", None),
            Launch::Shell("'~' (and HOME is not set)")
        );
    }
}
