//! keepalived's configuration syntax, read as keepalived 2.2.7 reads it
//! (`lib/parser.c`): lines of words; blocks in braces; `!` and `#`
//! comments anywhere outside double quotes (`\!` and `\#` for the
//! characters themselves); double-quoted words; `include GLOB` (and
//! `includer`, `includem`, `includew`, `includeb`, `includea`) relative
//! to the including file, with `*`, `?`, `[..]` and `{a,b}`; `@name` and
//! `@^name` conditional lines for a configuration id; `$NAME=value`
//! definitions (multi-line with a trailing `\`) and `$NAME` / `${NAME}`
//! substitution. Top-level blocks are handed out one at a time, so a
//! large file is never held as one tree.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::ImportError;

/// Deepest include nesting followed.
const MAX_INCLUDE_DEPTH: usize = 8;
/// Deepest block nesting accepted (keepalived's deepest is 4).
const MAX_BLOCK_DEPTH: usize = 32;
/// Most substitution rounds on one line (definitions that refer to each
/// other in a loop stop here).
const MAX_SUBSTITUTIONS: usize = 32;
/// Longest line definitions may expand to (a definition that refers to
/// itself twice doubles the line at each round).
const MAX_EXPANDED_LINE: usize = 64 * 1024;
/// Most lines multi-line definitions may produce in all (one that names
/// itself alone on a line would produce lines for ever).
const MAX_EXPANDED_LINES: usize = 100_000;

/// Where something was written: a file (index into [`Reader::files`]) and
/// a line from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    /// Index of the file.
    pub file: u32,
    /// Line, from 1.
    pub line: u32,
}

/// One statement: its words, and its block when followed by `{ ... }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The keyword and its arguments.
    pub words: Vec<String>,
    /// The line as written (after conditionals and substitution), for the
    /// keywords keepalived re-reads with single quotes and escapes
    /// (scripts).
    pub line: Option<String>,
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

/// Keywords whose line keepalived parses a second time, with single and
/// double quotes and backslash escapes (`alloc_strvec_quoted_escaped`).
fn keeps_line(keyword: &str) -> bool {
    matches!(
        keyword,
        "script"
            | "notify"
            | "notify_master"
            | "notify_backup"
            | "notify_fault"
            | "notify_stop"
            | "notify_deleted"
            | "notify_master_rx_lower_pri"
            | "notify_up"
            | "notify_down"
            | "quorum_up"
            | "quorum_down"
            | "misc_path"
            | "regex"
    )
}

#[derive(Debug)]
enum Tok {
    Word(String),
    Open,
    Close,
    Eol,
}

struct Source {
    file: u32,
    /// The file's text, read a line at a time from `at`.
    text: String,
    at: usize,
    line: u32,
    depth: usize,
}

struct Definition {
    lines: Vec<String>,
}

/// Reads a keepalived configuration and its includes, a top-level block
/// at a time.
pub struct Reader {
    /// Every file read so far (includes too); [`Pos::file`] indexes it.
    pub files: Vec<PathBuf>,
    /// Things keepalived would warn about, or that are read differently.
    pub warnings: Vec<(Pos, String)>,
    /// The configuration id `@name` lines are compared with.
    config_id: String,
    /// The first `@name` line, if any.
    pub conditionals_seen: Option<Pos>,
    stack: Vec<Source>,
    defs: HashMap<String, Definition>,
    /// Lines produced by a multi-line definition, still to read.
    pending_lines: Vec<(String, Pos)>,
    /// Lines multi-line definitions have produced so far.
    expanded_lines: usize,
    toks: std::collections::VecDeque<(Tok, Pos)>,
    /// The raw line of the statement being read.
    last_line: Option<String>,
    /// A multi-line definition being read.
    open_def: Option<String>,
}

impl Reader {
    /// Reads `text` as the file `path`; `config_id` is keepalived's `-i`.
    pub fn new(path: &Path, text: &str, config_id: &str) -> Self {
        let mut r = Reader {
            files: vec![path.to_path_buf()],
            warnings: Vec::new(),
            config_id: config_id.to_owned(),
            conditionals_seen: None,
            stack: Vec::new(),
            defs: HashMap::new(),
            pending_lines: Vec::new(),
            expanded_lines: 0,
            toks: std::collections::VecDeque::new(),
            last_line: None,
            open_def: None,
        };
        for (name, value) in [("_HASH", "#"), ("_BANG", "!"), ("_INSTANCE", config_id)] {
            r.defs.insert(
                name.to_owned(),
                Definition {
                    lines: vec![value.to_owned()],
                },
            );
        }
        if let Some(dir) = path.parent() {
            r.defs.insert(
                "_PWD".to_owned(),
                Definition {
                    lines: vec![dir.display().to_string()],
                },
            );
        }
        r.stack.push(Source {
            file: 0,
            text: text.to_owned(),
            at: 0,
            line: 0,
            depth: 0,
        });
        r
    }

    /// The file of a position.
    pub fn file(&self, pos: Pos) -> &Path {
        self.files
            .get(pos.file as usize)
            .map_or(Path::new(""), PathBuf::as_path)
    }

    fn warn(&mut self, pos: Pos, message: String) {
        self.warnings.push((pos, message));
    }

    fn syntax(&self, pos: Pos, message: impl Into<String>) -> ImportError {
        ImportError::Syntax {
            file: self.file(pos).to_path_buf(),
            line: pos.line as usize,
            message: message.into(),
        }
    }

    /// The next physical line, from a definition's expansion or a file.
    fn next_raw_line(&mut self) -> Option<(String, Pos)> {
        if let Some(l) = self.pending_lines.pop() {
            return Some(l);
        }
        loop {
            let src = self.stack.last_mut()?;
            match next_line_of(&src.text, &mut src.at) {
                Some(l) => {
                    src.line += 1;
                    return Some((
                        l,
                        Pos {
                            file: src.file,
                            line: src.line,
                        },
                    ));
                }
                None => {
                    self.stack.pop();
                }
            }
        }
    }

    /// The next logical line: comments removed, conditionals applied,
    /// definitions recorded and substituted, includes followed. `None` at
    /// the end of all files.
    fn next_line(&mut self) -> Result<Option<(String, Pos)>, ImportError> {
        'lines: loop {
            let Some((raw, pos)) = self.next_raw_line() else {
                self.open_def = None;
                return Ok(None);
            };
            let mut line = decomment(&raw);
            if let Some(name) = self.open_def.clone() {
                // A multi-line definition goes on while lines end with `\`.
                let (text, more) = match line.strip_suffix('\\') {
                    Some(t) => (t.trim_end().to_owned(), true),
                    None => (line.clone(), false),
                };
                if !more {
                    self.open_def = None;
                }
                if let Some(d) = self.defs.get_mut(&name)
                    && !text.is_empty()
                {
                    d.lines.push(text);
                }
                continue;
            }
            if line.is_empty() {
                continue;
            }
            for _ in 0..MAX_SUBSTITUTIONS {
                if let Some(rest) = line.strip_prefix('@') {
                    self.conditionals_seen.get_or_insert(pos);
                    let (negate, rest) = match rest.strip_prefix('^') {
                        Some(r) => (true, r),
                        None => (false, rest),
                    };
                    let Some((id, text)) = rest.split_once([' ', '\t']) else {
                        continue 'lines;
                    };
                    if (id == self.config_id) == negate {
                        continue 'lines;
                    }
                    line = text.trim_start().to_owned();
                }
                if line.starts_with('$')
                    && let Some((name, value)) = definition(&line)
                {
                    let (value, more) = match value.strip_suffix('\\') {
                        Some(v) => (v.trim_end().to_owned(), true),
                        None => (value.to_owned(), false),
                    };
                    let lines = if value.is_empty() {
                        Vec::new()
                    } else {
                        vec![value]
                    };
                    self.defs.insert(name.to_owned(), Definition { lines });
                    if more {
                        self.open_def = Some(name.to_owned());
                    }
                    continue 'lines;
                }
                if line.starts_with("~SEQ") || line.starts_with("~LST") {
                    return Err(self.syntax(
                        pos,
                        "~SEQ and ~LST are not supported by import-keepalived; expand the lines by hand",
                    ));
                }
                if !line.contains('$') {
                    break;
                }
                match self.substitute(&line) {
                    Substituted::None => break,
                    Substituted::TooLong => {
                        return Err(self.syntax(
                            pos,
                            format!("definitions expand this line beyond {MAX_EXPANDED_LINE} bytes (a definition that refers to itself?)"),
                        ));
                    }
                    Substituted::Line(l) => line = decomment(&l),
                    Substituted::Lines(mut lines) => {
                        self.expanded_lines += lines.len();
                        if self.expanded_lines > MAX_EXPANDED_LINES {
                            return Err(self.syntax(
                                pos,
                                format!("multi-line definitions expand to more than {MAX_EXPANDED_LINES} lines (a definition that names itself?)"),
                            ));
                        }
                        // A multi-line definition alone on a line: its lines
                        // are read in its place.
                        lines.reverse();
                        self.pending_lines
                            .extend(lines.into_iter().map(|l| (l, pos)));
                        continue 'lines;
                    }
                }
            }
            if let Some((kind, pattern)) = include(&line) {
                self.include(pos, kind, pattern)?;
                continue;
            }
            return Ok(Some((line, pos)));
        }
    }

    fn substitute(&mut self, line: &str) -> Substituted {
        let mut out = String::with_capacity(line.len());
        let mut rest = line;
        let mut changed = false;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let (name, used) = if let Some(inner) = after.strip_prefix('{') {
                match inner.find('}') {
                    Some(end) => (&inner[..end], end + 2),
                    None => ("", 0),
                }
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                // keepalived: `$NAME` ends at a blank, `,`, `)` or the end
                // of the line (`$A/24` is not `$A` then `/24`: write
                // `${A}/24`).
                match after[end..].chars().next() {
                    None | Some(' ' | '\t' | ',' | ')') => (&after[..end], end),
                    Some(_) => ("", 0),
                }
            };
            let valid_name = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            match self.defs.get(name).filter(|_| valid_name && used > 0) {
                Some(d)
                    if d.lines.len() > 1
                        && out.trim().is_empty()
                        && after[used..].trim().is_empty() =>
                {
                    return Substituted::Lines(d.lines.clone());
                }
                Some(d) => {
                    out.push_str(&d.lines.join(" "));
                    if out.len() > MAX_EXPANDED_LINE {
                        return Substituted::TooLong;
                    }
                    changed = true;
                    rest = &after[used..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        if changed {
            Substituted::Line(out)
        } else {
            Substituted::None
        }
    }

    fn include(&mut self, pos: Pos, kind: &str, pattern: &str) -> Result<(), ImportError> {
        let depth = self.stack.last().map_or(0, |s| s.depth) + 1;
        if depth > MAX_INCLUDE_DEPTH {
            return Err(self.syntax(
                pos,
                format!("includes nested deeper than {MAX_INCLUDE_DEPTH}"),
            ));
        }
        let pattern = pattern.trim().trim_matches('"');
        if pattern.is_empty() {
            return Err(self.syntax(pos, format!("{kind} needs a file name")));
        }
        let base = self
            .file(pos)
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        let matches: Vec<PathBuf> = expand_braces(&full.to_string_lossy())
            .into_iter()
            .flat_map(|p| glob(Path::new(&p)))
            .collect();
        if matches.is_empty() {
            self.warn(pos, format!("{kind} `{pattern}` matches no file"));
        }
        // Read in reverse so that the first match is read first.
        for m in matches.into_iter().rev() {
            if self
                .stack
                .iter()
                .any(|s| self.files.get(s.file as usize) == Some(&m))
            {
                return Err(self.syntax(pos, format!("{} includes itself", m.display())));
            }
            use std::os::unix::fs::PermissionsExt;
            let executable = std::fs::metadata(&m)
                .map(|md| md.permissions().mode() & 0o111 != 0)
                .unwrap_or(false);
            if executable {
                self.warn(
                    pos,
                    format!(
                        "{} is executable; keepalived skips it, so its content is not carried",
                        m.display()
                    ),
                );
                continue;
            }
            let bytes = std::fs::read(&m).map_err(|e| ImportError::Io {
                file: m.clone(),
                message: e.to_string(),
            })?;
            let text = String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            let file = u32::try_from(self.files.len()).unwrap_or(u32::MAX);
            self.files.push(m);
            self.stack.push(Source {
                file,
                text,
                at: 0,
                line: 0,
                depth,
            });
        }
        Ok(())
    }

    /// Tokens of the next line, queued; false at the end.
    fn fill(&mut self) -> Result<bool, ImportError> {
        let Some((line, pos)) = self.next_line()? else {
            return Ok(false);
        };
        let mut toks = Vec::new();
        tokenize(&line, &mut toks);
        if let Some(Tok::Word(first)) = toks.first()
            && keeps_line(first)
        {
            self.last_line = Some(line);
        }
        for t in toks {
            self.toks.push_back((t, pos));
        }
        self.toks.push_back((Tok::Eol, pos));
        Ok(true)
    }

    fn peek(&mut self) -> Result<Option<&Tok>, ImportError> {
        while self.toks.is_empty() {
            if !self.fill()? {
                return Ok(None);
            }
        }
        Ok(self.toks.front().map(|(t, _)| t))
    }

    fn pop(&mut self) -> Option<(Tok, Pos)> {
        self.toks.pop_front()
    }

    /// The next top-level statement with its block; `None` at the end.
    pub fn next_top(&mut self) -> Result<Option<Node>, ImportError> {
        loop {
            match self.peek()? {
                None => return Ok(None),
                Some(Tok::Eol) => {
                    self.pop();
                }
                Some(Tok::Close) => {
                    let (_, pos) = self.pop().unwrap_or((Tok::Eol, Pos::default()));
                    // keepalived: "Extra '}' found", and it goes on.
                    self.warn(
                        pos,
                        "extra `}` ignored (keepalived ignores it too)".to_owned(),
                    );
                }
                Some(_) => return self.statement(0).map(Some),
            }
        }
    }

    fn statement(&mut self, depth: usize) -> Result<Node, ImportError> {
        let (first, pos) = self.pop().unwrap_or((Tok::Eol, Pos::default()));
        if depth > MAX_BLOCK_DEPTH {
            return Err(self.syntax(pos, format!("blocks nested deeper than {MAX_BLOCK_DEPTH}")));
        }
        let mut words = Vec::new();
        let line = match first {
            Tok::Word(w) => {
                let keeps = keeps_line(&w);
                words.push(w);
                while let Some(Tok::Word(_)) = self.peek()? {
                    if let Some((Tok::Word(w), _)) = self.pop() {
                        words.push(w);
                    }
                }
                if keeps { self.last_line.take() } else { None }
            }
            // `{` alone: a block without a keyword.
            Tok::Open => {
                let children = self.block(depth + 1, pos)?;
                return Ok(Node {
                    words,
                    line: None,
                    children: Some(children),
                    pos,
                });
            }
            Tok::Close | Tok::Eol => None,
        };
        // `{` may follow on the same line or on a later one (past line
        // ends only).
        let mut ahead = 0;
        loop {
            while self.toks.len() <= ahead {
                if !self.fill()? {
                    break;
                }
            }
            match self.toks.get(ahead) {
                Some((Tok::Eol, _)) => ahead += 1,
                Some((Tok::Open, _)) => {
                    for _ in 0..=ahead {
                        self.pop();
                    }
                    let children = self.block(depth + 1, pos)?;
                    return Ok(Node {
                        words,
                        line,
                        children: Some(children),
                        pos,
                    });
                }
                _ => {
                    return Ok(Node {
                        words,
                        line,
                        children: None,
                        pos,
                    });
                }
            }
        }
    }

    fn block(&mut self, depth: usize, opened_at: Pos) -> Result<Vec<Node>, ImportError> {
        let mut nodes = Vec::new();
        loop {
            match self.peek()? {
                None => {
                    return Err(self.syntax(
                        opened_at,
                        "block opened here is never closed (missing `}`); keepalived would read the rest of the file into it",
                    ));
                }
                Some(Tok::Eol) => {
                    self.pop();
                }
                Some(Tok::Close) => {
                    self.pop();
                    return Ok(nodes);
                }
                Some(_) => nodes.push(self.statement(depth)?),
            }
        }
    }
}

enum Substituted {
    None,
    /// Past [`MAX_EXPANDED_LINE`].
    TooLong,
    Line(String),
    Lines(Vec<String>),
}

/// The line of `text` at `at` (without its end), moving `at` past it.
fn next_line_of(text: &str, at: &mut usize) -> Option<String> {
    let rest = text.get(*at..).filter(|r| !r.is_empty())?;
    let end = rest.find('\n').unwrap_or(rest.len());
    *at += (end + 1).min(rest.len());
    Some(rest[..end].trim_end_matches('\r').to_owned())
}

/// `$NAME=value` (spaces allowed around `=`).
fn definition(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('$')?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let name = &rest[..end];
    if !name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
    {
        return None;
    }
    let value = rest[end..].trim_start().strip_prefix('=')?;
    Some((name, value.trim()))
}

/// `include FILE` and its `includeX` variants (which only change what
/// keepalived reports about missing files).
fn include(line: &str) -> Option<(&str, &str)> {
    let (kw, rest) = line.split_once([' ', '\t'])?;
    matches!(
        kw,
        "include" | "includer" | "includem" | "includew" | "includeb" | "includea"
    )
    .then_some((kw, rest))
}

/// keepalived's `decomment`: leading and trailing blanks go, a `!` or `#`
/// outside double quotes starts a comment, `\!` and `\#` outside quotes
/// are the characters themselves.
pub fn decomment(line: &str) -> String {
    let line = line.trim_start_matches([' ', '\t']);
    let mut out = String::with_capacity(line.len());
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                out.push(c);
            }
            '\\' => match chars.peek() {
                Some('#' | '!') if !quoted => {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
                Some(_) => {
                    out.push(c);
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
                None => out.push(c),
            },
            '!' | '#' if !quoted => break,
            c => out.push(c),
        }
    }
    let trimmed = out.trim_end_matches([' ', '\t']).len();
    out.truncate(trimmed);
    out
}

/// keepalived's word splitting (`alloc_strvec_r`): blanks separate, a
/// double-quoted run is one word without its quotes, `{` and `}` outside
/// quotes are tokens of their own.
fn tokenize(line: &str, out: &mut Vec<Tok>) {
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let flush = |word: &mut String, in_word: &mut bool, out: &mut Vec<Tok>| {
        if *in_word {
            out.push(Tok::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    for c in line.chars() {
        if quoted {
            if c == '"' {
                quoted = false;
                flush(&mut word, &mut in_word, out);
            } else {
                word.push(c);
            }
            continue;
        }
        match c {
            '"' => {
                flush(&mut word, &mut in_word, out);
                quoted = true;
                in_word = true;
            }
            '{' => {
                flush(&mut word, &mut in_word, out);
                out.push(Tok::Open);
            }
            '}' => {
                flush(&mut word, &mut in_word, out);
                out.push(Tok::Close);
            }
            c if c == ' ' || c == '\t' => flush(&mut word, &mut in_word, out),
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    flush(&mut word, &mut in_word, out);
}

/// keepalived's second reading of script lines
/// (`alloc_strvec_quoted_escaped`): blanks separate; single or double
/// quotes group; backslash escapes (`\n`, `\t`, `\xHH`, octal, `\"`...)
/// inside and outside quotes. `None` for an unterminated quote.
pub fn split_quoted_escaped(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(words);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        loop {
            let Some(c) = chars.next() else {
                if quote.is_some() {
                    return None;
                }
                break;
            };
            match (quote, c) {
                (_, '\\') => {
                    let e = chars.next()?;
                    match e {
                        'x' if chars.peek().is_some_and(char::is_ascii_hexdigit) => {
                            let mut v: u32 = 0;
                            while let Some(d) = chars.peek().and_then(|c| c.to_digit(16)) {
                                v = (v << 4 | d) & 0xff;
                                chars.next();
                            }
                            word.push(char::from(u8::try_from(v).unwrap_or(0)));
                        }
                        '0'..='7' => {
                            let mut v = e.to_digit(8).unwrap_or(0);
                            for _ in 0..2 {
                                if let Some(d) = chars.peek().and_then(|c| c.to_digit(8)) {
                                    v = v * 8 + d;
                                    chars.next();
                                }
                            }
                            word.push(char::from(u8::try_from(v & 0xff).unwrap_or(0)));
                        }
                        'a' => word.push('\u{7}'),
                        'b' => word.push('\u{8}'),
                        'E' => word.push('\u{1b}'),
                        'f' => word.push('\u{c}'),
                        'n' => word.push('\n'),
                        'r' => word.push('\r'),
                        't' => word.push('\t'),
                        'v' => word.push('\u{b}'),
                        other => word.push(other),
                    }
                }
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => word.push(c),
                (None, '"' | '\'') => quote = Some(c),
                (None, ' ' | '\t') => break,
                (None, c) => word.push(c),
            }
        }
        words.push(word);
    }
}

/// Expands `{a,b}` alternatives (glob's GLOB_BRACE), innermost last.
pub fn expand_braces(pattern: &str) -> Vec<String> {
    let Some(open) = pattern.find('{') else {
        return vec![pattern.to_owned()];
    };
    let mut depth = 0;
    let mut close = None;
    let mut commas = Vec::new();
    for (i, c) in pattern[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            ',' if depth == 1 => commas.push(open + i),
            _ => {}
        }
    }
    let Some(close) = close else {
        return vec![pattern.to_owned()];
    };
    let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
    let mut bounds = vec![open];
    bounds.extend(&commas);
    bounds.push(close);
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let alt = &pattern[w[0] + 1..w[1]];
        out.extend(expand_braces(&format!("{head}{alt}{tail}")));
    }
    out
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

    fn parse_with(text: &str, id: &str) -> Result<(Vec<Node>, Reader), ImportError> {
        let mut r = Reader::new(Path::new("k.conf"), text, id);
        let mut nodes = Vec::new();
        while let Some(n) = r.next_top()? {
            nodes.push(n);
        }
        Ok((nodes, r))
    }

    fn parse(text: &str) -> Result<Vec<Node>, ImportError> {
        parse_with(text, "node").map(|(n, _)| n)
    }

    #[test]
    fn comments_outside_double_quotes_only() {
        assert_eq!(decomment("auth_pass s3cr3t!x"), "auth_pass s3cr3t");
        assert_eq!(decomment("  priority 100 # high"), "priority 100");
        assert_eq!(decomment("script \"a!b#c\" ! x"), "script \"a!b#c\"");
        assert_eq!(decomment("script 'a#b'"), "script 'a");
        assert_eq!(decomment("x a\\#b"), "x a#b");
        assert_eq!(decomment("! whole line"), "");
    }

    #[test]
    fn blocks_words_and_quotes() {
        let nodes = parse(
            "vrrp_instance VI_1 {\n  authentication { auth_type PASS }\n  notify \"/bin/echo a b\" root\n}\nglobal_defs\n{\n router_id x\n}\n",
        )
        .expect("parses");
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].words, ["vrrp_instance", "VI_1"]);
        let block = nodes[0].block();
        assert_eq!(block[0].keyword(), "authentication");
        assert_eq!(block[0].block()[0].words, ["auth_type", "PASS"]);
        assert_eq!(block[1].args(), ["/bin/echo a b", "root"]);
        assert_eq!(
            block[1].line.as_deref(),
            Some("notify \"/bin/echo a b\" root")
        );
        assert_eq!(block[1].pos.line, 3);
        assert_eq!(nodes[1].block()[0].words, ["router_id", "x"]);
    }

    #[test]
    fn script_lines_split_with_both_quotes_and_escapes() {
        assert_eq!(
            split_quoted_escaped(r#"script '/usr/bin/killall -0 nginx' root"#),
            Some(vec![
                "script".to_owned(),
                "/usr/bin/killall -0 nginx".to_owned(),
                "root".to_owned()
            ])
        );
        assert_eq!(
            split_quoted_escaped(r#"a "b\"c" d\ e \x41"#),
            Some(vec![
                "a".to_owned(),
                "b\"c".to_owned(),
                "d e".to_owned(),
                "A".to_owned()
            ])
        );
        assert_eq!(split_quoted_escaped("a 'open"), None);
    }

    #[test]
    fn definitions_that_grow_without_end_are_refused_at_their_line() {
        // Each round doubles the line: 2^32 copies without a limit.
        let text = "global_defs {\n}\n$P=${P}${P}\nx ${P}\n";
        let Err(err) = parse_with(text, "node") else {
            panic!("accepted");
        };
        let msg = err.to_string();
        assert!(
            msg.contains(":4:") && msg.contains("beyond 65536 bytes"),
            "{msg}"
        );
        // A multi-line definition that names itself alone on a line.
        let text = "$M=a 1 \\\n$M\n$M\n";
        let Err(err) = parse_with(text, "node") else {
            panic!("accepted");
        };
        let msg = err.to_string();
        assert!(
            msg.contains(":3:") && msg.contains("more than 100000 lines"),
            "{msg}"
        );
    }

    #[test]
    fn conditionals_and_definitions() {
        let text = "$IFACE=eth9\n$PRIO = 150\n@node priority $PRIO\n@other priority 100\n@^other interface ${IFACE}\n$MULTI=a 1 \\\n b 2\nblk {\n$MULTI\n}\nx $UNDEFINED $PRIO/24 ${PRIO}/24\n";
        let (nodes, r) = parse_with(text, "node").expect("parses");
        assert_eq!(r.conditionals_seen.map(|p| p.line), Some(3));
        let words: Vec<Vec<String>> = nodes.iter().map(|n| n.words.clone()).collect();
        assert_eq!(words[0], ["priority", "150"]);
        assert_eq!(words[1], ["interface", "eth9"]);
        assert_eq!(nodes[2].block()[0].words, ["a", "1"]);
        assert_eq!(nodes[2].block()[1].words, ["b", "2"]);
        assert_eq!(words[3], ["x", "$UNDEFINED", "$PRIO/24", "150/24"]);
        let (nodes, _) = parse_with(text, "other").expect("parses");
        assert_eq!(nodes[0].words, ["priority", "100"]);
        assert_eq!(nodes[1].keyword(), "blk");
    }

    #[test]
    fn unclosed_blocks_are_errors_and_extra_braces_warnings() {
        let e = parse("vrrp_instance VI_1 {\n priority 1\n").expect_err("open");
        assert!(e.to_string().contains("k.conf:1:"), "{e}");
        let (nodes, r) = parse_with("global_defs {\n}\n}\nx 1\n", "n").expect("extra");
        assert_eq!(nodes.len(), 2);
        assert_eq!(r.warnings[0].0.line, 3);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = "a {".repeat(10_000);
        assert!(parse(&text).is_err());
    }

    #[test]
    fn seq_is_refused() {
        assert!(parse("~SEQ(i, 1, 3) x $i\n").is_err());
    }

    #[test]
    fn fnmatch_and_braces() {
        assert!(fnmatch(b"*.conf", b"a.conf"));
        assert!(!fnmatch(b"*.conf", b"a.conf.bak"));
        assert!(fnmatch(b"vi_?.conf", b"vi_1.conf"));
        assert!(fnmatch(b"[ab]*", b"b1"));
        assert!(!fnmatch(b"[!ab]*", b"b1"));
        assert!(fnmatch(b"[0-9]x", b"5x"));
        assert!(fnmatch(b"*", b""));
        assert_eq!(
            expand_braces("a{b,c}d{1,2}"),
            ["abd1", "abd2", "acd1", "acd2"]
        );
        assert_eq!(expand_braces("plain"), ["plain"]);
    }
}
