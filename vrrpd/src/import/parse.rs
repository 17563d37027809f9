//! keepalived's configuration syntax: lines of words, blocks in braces,
//! `!` and `#` comments anywhere outside quotes (as keepalived 2.x strips
//! them: `auth_pass s3cr3t!x` is `s3cr3t`), double-quoted strings, and
//! `include GLOB` relative to the including file.

use std::path::{Path, PathBuf};

use super::ImportError;

/// Deepest include nesting followed (keepalived stops at 8 as well... we
/// simply refuse loops).
const MAX_INCLUDE_DEPTH: usize = 8;
/// Deepest block nesting accepted (keepalived's deepest is 4).
const MAX_BLOCK_DEPTH: usize = 32;

/// Where something was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pos {
    /// The file.
    pub file: PathBuf,
    /// Its line, from 1.
    pub line: usize,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open,
    Close,
    Eol,
}

/// One statement: its words, and its block when followed by `{ ... }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The keyword and its arguments.
    pub words: Vec<String>,
    /// The block, if any.
    pub children: Option<Vec<Node>>,
    /// Where the keyword is.
    pub pos: Pos,
}

impl Node {
    /// The keyword.
    pub fn keyword(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    /// The arguments.
    pub fn args(&self) -> &[String] {
        self.words.get(1..).unwrap_or(&[])
    }

    /// The block's statements (none without a block).
    pub fn block(&self) -> &[Node] {
        self.children.as_deref().unwrap_or(&[])
    }
}

/// Removes comments: from an unquoted `!` or `#` to the end of the line.
fn decomment(line: &str) -> &str {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            '!' | '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

fn tokenize_line(line: &str, out: &mut Vec<(Tok, usize)>, lineno: usize) {
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    let flush = |word: &mut String, in_word: &mut bool, out: &mut Vec<(Tok, usize)>| {
        if *in_word {
            out.push((Tok::Word(std::mem::take(word)), lineno));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' => quoted = false,
                '\\' => {
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                }
                c => word.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                quoted = true;
                in_word = true;
            }
            '{' => {
                flush(&mut word, &mut in_word, out);
                out.push((Tok::Open, lineno));
            }
            '}' => {
                flush(&mut word, &mut in_word, out);
                out.push((Tok::Close, lineno));
            }
            c if c.is_whitespace() => flush(&mut word, &mut in_word, out),
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    flush(&mut word, &mut in_word, out);
    out.push((Tok::Eol, lineno));
}

/// Tokens with their file index and line.
struct Tokens {
    files: Vec<PathBuf>,
    toks: Vec<(Tok, usize, usize)>,
}

fn read_file(
    path: &Path,
    text: &str,
    depth: usize,
    tokens: &mut Tokens,
    warnings: &mut Vec<(Pos, String)>,
) -> Result<(), ImportError> {
    let file_index = tokens.files.len();
    tokens.files.push(path.to_path_buf());
    for (n, raw) in text.lines().enumerate() {
        let lineno = n + 1;
        let line = decomment(raw);
        let mut toks = Vec::new();
        tokenize_line(line, &mut toks, lineno);
        if let Some((Tok::Word(w), _)) = toks.first()
            && w == "include"
        {
            let pos = Pos {
                file: path.to_path_buf(),
                line: lineno,
            };
            let Some((Tok::Word(pattern), _)) = toks.get(1) else {
                return Err(ImportError::Syntax {
                    pos,
                    message: "include needs a file name".to_owned(),
                });
            };
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(ImportError::Syntax {
                    pos,
                    message: format!("includes nested deeper than {MAX_INCLUDE_DEPTH}"),
                });
            }
            let base = path.parent().unwrap_or(Path::new("."));
            let full = if Path::new(pattern).is_absolute() {
                PathBuf::from(pattern)
            } else {
                base.join(pattern)
            };
            let matches = glob(&full);
            if matches.is_empty() {
                warnings.push((pos, format!("include `{pattern}` matches no file")));
            }
            for m in matches {
                let text = std::fs::read_to_string(&m).map_err(|e| ImportError::Io {
                    file: m.clone(),
                    message: e.to_string(),
                })?;
                read_file(&m, &text, depth + 1, tokens, warnings)?;
            }
            continue;
        }
        tokens
            .toks
            .extend(toks.into_iter().map(|(t, l)| (t, file_index, l)));
    }
    Ok(())
}

/// Parses a file and its includes into statements.
pub fn parse_file(
    path: &Path,
    text: &str,
    warnings: &mut Vec<(Pos, String)>,
) -> Result<Vec<Node>, ImportError> {
    let mut tokens = Tokens {
        files: Vec::new(),
        toks: Vec::new(),
    };
    read_file(path, text, 0, &mut tokens, warnings)?;
    let mut i = 0;
    parse_block(&tokens, &mut i, 0, None)
}

fn parse_block(
    t: &Tokens,
    i: &mut usize,
    depth: usize,
    opened_at: Option<Pos>,
) -> Result<Vec<Node>, ImportError> {
    let pos_of = |k: usize| -> Pos {
        t.toks.get(k).map_or_else(
            || Pos {
                file: t.files.first().cloned().unwrap_or_default(),
                line: 0,
            },
            |(_, f, l)| Pos {
                file: t.files.get(*f).cloned().unwrap_or_default(),
                line: *l,
            },
        )
    };
    if depth > MAX_BLOCK_DEPTH {
        return Err(ImportError::Syntax {
            pos: pos_of(*i),
            message: format!("blocks nested deeper than {MAX_BLOCK_DEPTH}"),
        });
    }
    let mut nodes = Vec::new();
    loop {
        let Some((tok, _, _)) = t.toks.get(*i) else {
            return match opened_at {
                Some(pos) => Err(ImportError::Syntax {
                    pos,
                    message: "block opened here is never closed (missing `}`)".to_owned(),
                }),
                None => Ok(nodes),
            };
        };
        match tok {
            Tok::Eol => *i += 1,
            Tok::Close => {
                if opened_at.is_none() {
                    return Err(ImportError::Syntax {
                        pos: pos_of(*i),
                        message: "`}` without a matching `{`".to_owned(),
                    });
                }
                *i += 1;
                return Ok(nodes);
            }
            Tok::Open => {
                // A block without a keyword: keepalived ignores the lot;
                // read it so the braces stay balanced and report it.
                let pos = pos_of(*i);
                *i += 1;
                let children = parse_block(t, i, depth + 1, Some(pos.clone()))?;
                nodes.push(Node {
                    words: Vec::new(),
                    children: Some(children),
                    pos,
                });
            }
            Tok::Word(_) => {
                let pos = pos_of(*i);
                let mut words = Vec::new();
                while let Some((Tok::Word(w), _, _)) = t.toks.get(*i) {
                    words.push(w.clone());
                    *i += 1;
                }
                let mut children = None;
                // `{` may follow on the same line or on a later one.
                let mut j = *i;
                while let Some((Tok::Eol, _, _)) = t.toks.get(j) {
                    j += 1;
                }
                if let Some((Tok::Open, _, _)) = t.toks.get(j) {
                    *i = j + 1;
                    children = Some(parse_block(t, i, depth + 1, Some(pos.clone()))?);
                }
                nodes.push(Node {
                    words,
                    children,
                    pos,
                });
            }
        }
    }
}

/// Expands `*`, `?` and `[...]` in each component of `pattern`; matches
/// are sorted, as keepalived's glob(3) returns them.
pub fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut current = vec![PathBuf::new()];
    for comp in pattern.components() {
        let text = comp.as_os_str().to_string_lossy();
        let wild = text.contains(['*', '?', '[']);
        let mut next = Vec::new();
        for base in &current {
            if !wild {
                next.push(base.join(comp.as_os_str()));
                continue;
            }
            let dir = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.') || text.starts_with('.'))
                .filter(|n| fnmatch(text.as_bytes(), n.as_bytes()))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| base.join(n)));
        }
        current = next;
    }
    current.retain(|p| p.is_file());
    current
}

/// Shell-style matching of one path component.
fn fnmatch(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let (mut star_p, mut star_n) = (None, 0);
    while n < name.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star_p = Some(p);
                    star_n = n;
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, len)) = class(&pat[p..], name[n])
                        && matched
                    {
                        p += len;
                        n += 1;
                        continue;
                    }
                }
                c if c == name[n] => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star_p {
            Some(sp) => {
                p = sp + 1;
                star_n += 1;
                n = star_n;
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|c| *c == b'*')
}

/// Matches `c` against a `[...]` class at the start of `pat`; returns
/// whether it matched and the class's length.
fn class(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    let end = pat.iter().skip(2).position(|b| *b == b']')? + 2;
    let body = &pat[1..end];
    let (negate, body) = match body.first() {
        Some(b'!' | b'^') => (true, &body[1..]),
        _ => (false, body),
    };
    let mut matched = false;
    let mut k = 0;
    while k < body.len() {
        if k + 2 < body.len() && body[k + 1] == b'-' {
            matched |= body[k] <= c && c <= body[k + 2];
            k += 3;
        } else {
            matched |= body[k] == c;
            k += 1;
        }
    }
    Some((matched != negate, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Node>, ImportError> {
        parse_file(Path::new("k.conf"), text, &mut Vec::new())
    }

    #[test]
    fn comments_anywhere_outside_quotes() {
        assert_eq!(decomment("auth_pass s3cr3t!x"), "auth_pass s3cr3t");
        assert_eq!(decomment("priority 100 # high"), "priority 100 ");
        assert_eq!(decomment("script \"a!b#c\" ! x"), "script \"a!b#c\" ");
        assert_eq!(decomment("! whole line"), "");
    }

    #[test]
    fn blocks_words_and_quotes() {
        let nodes = parse(
            "vrrp_instance VI_1 {\n  authentication { auth_type PASS }\n  notify \"/bin/echo a b\"\n}\nglobal_defs\n{\n router_id x\n}\n",
        )
        .expect("parses");
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].words, ["vrrp_instance", "VI_1"]);
        let block = nodes[0].block();
        assert_eq!(block[0].keyword(), "authentication");
        assert_eq!(block[0].block()[0].words, ["auth_type", "PASS"]);
        assert_eq!(block[1].args(), ["/bin/echo a b"]);
        assert_eq!(block[1].pos.line, 3);
        assert_eq!(nodes[1].block()[0].words, ["router_id", "x"]);
    }

    #[test]
    fn unbalanced_braces_are_errors() {
        let e = parse("vrrp_instance VI_1 {\n priority 1\n").expect_err("open");
        assert!(e.to_string().contains("k.conf:1"), "{e}");
        let e = parse("global_defs {\n}\n}\n").expect_err("close");
        assert!(e.to_string().contains("k.conf:3"), "{e}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = "a {".repeat(10_000);
        assert!(parse(&text).is_err());
    }

    #[test]
    fn fnmatch_patterns() {
        assert!(fnmatch(b"*.conf", b"a.conf"));
        assert!(!fnmatch(b"*.conf", b"a.conf.bak"));
        assert!(fnmatch(b"vi_?.conf", b"vi_1.conf"));
        assert!(fnmatch(b"[ab]*", b"b1"));
        assert!(!fnmatch(b"[!ab]*", b"b1"));
        assert!(fnmatch(b"[0-9]x", b"5x"));
        assert!(fnmatch(b"*", b""));
    }
}
