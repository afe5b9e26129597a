//! Whether a text is a document Python's `json.loads` accepts: standard JSON plus `NaN`,
//! `Infinity` and `-Infinity`, lone surrogate escapes, and duplicate keys. Iterative (an explicit
//! stack), so no input can overflow the call stack.

/// Whether `json.loads(text)` succeeds (Python's whitespace in JSON is ` \t\n\r` only).
pub fn is_python_json(text: &str) -> bool {
    let mut parser = Parser {
        text: text.as_bytes(),
        at: 0,
    };
    parser.document().is_some()
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

/// What a container expects next.
#[derive(Clone, Copy, PartialEq)]
enum Open {
    Array,
    Object,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, literal: &str) -> bool {
        let found = self.text[self.at..].starts_with(literal.as_bytes());
        if found {
            self.at += literal.len();
        }
        found
    }

    fn document(&mut self) -> Option<()> {
        let mut stack: Vec<Open> = Vec::new();
        self.skip_space();
        'value: loop {
            // A value starts here.
            self.skip_space();
            match self.peek()? {
                b'[' => {
                    self.at += 1;
                    self.skip_space();
                    if self.peek() == Some(b']') {
                        self.at += 1;
                    } else {
                        stack.push(Open::Array);
                        continue 'value;
                    }
                }
                b'{' => {
                    self.at += 1;
                    self.skip_space();
                    if self.peek() == Some(b'}') {
                        self.at += 1;
                    } else {
                        self.key()?;
                        stack.push(Open::Object);
                        continue 'value;
                    }
                }
                b'"' => self.string()?,
                _ => self.scalar()?,
            }
            // A value ended: close containers or move to the next element.
            loop {
                self.skip_space();
                let Some(&open) = stack.last() else {
                    return (self.at == self.text.len()).then_some(());
                };
                match (open, self.peek()?) {
                    (_, b',') => {
                        self.at += 1;
                        if open == Open::Object {
                            self.skip_space();
                            self.key()?;
                        }
                        continue 'value;
                    }
                    (Open::Array, b']') | (Open::Object, b'}') => {
                        self.at += 1;
                        stack.pop();
                    }
                    _ => return None,
                }
            }
        }
    }

    /// `"key" :` of an object member.
    fn key(&mut self) -> Option<()> {
        if self.peek()? != b'"' {
            return None;
        }
        self.string()?;
        self.skip_space();
        self.eat(":").then_some(())
    }

    fn string(&mut self) -> Option<()> {
        self.at += 1;
        loop {
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => {
                    self.at += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                        b'u' => {
                            let hex = self.text.get(self.at + 1..self.at + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.at += 5;
                        }
                        _ => return None,
                    }
                }
                c if c < 0x20 => return None,
                _ => self.at += 1,
            }
        }
    }

    fn scalar(&mut self) -> Option<()> {
        for literal in ["true", "false", "null", "NaN", "Infinity", "-Infinity"] {
            if self.eat(literal) {
                return Some(());
            }
        }
        self.number()
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`, each optional part kept only when
    /// complete (as Python's scanner backs off).
    fn number(&mut self) -> Option<()> {
        let digits = |p: &Self, from: usize| {
            p.text[from.min(p.text.len())..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count()
        };
        let mut at = self.at + usize::from(self.peek() == Some(b'-'));
        match self.text.get(at)? {
            b'0' => at += 1,
            b'1'..=b'9' => at += digits(self, at),
            _ => return None,
        }
        if self.text.get(at) == Some(&b'.') && digits(self, at + 1) > 0 {
            at += 1 + digits(self, at + 1);
        }
        if matches!(self.text.get(at), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.text.get(at + 1), Some(b'-' | b'+')));
            let exponent = digits(self, at + 1 + sign);
            if exponent > 0 {
                at += 1 + sign + exponent;
            }
        }
        self.at = at;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::is_python_json;

    #[test]
    fn accepts_what_python_accepts() {
        for ok in [
            "{}",
            "[]",
            " [1, -2.5e3, \"x\\u00e9\", {\"a\": null}] ",
            "NaN",
            "[-Infinity]",
            "\"\\ud800\"",
            "{\"a\": 1, \"a\": 2}",
            "0",
            "\"é 🎉\"",
        ] {
            assert!(is_python_json(ok), "{ok}");
        }
        for bad in [
            "",
            "[1, 2,]",
            "{a: 1}",
            "01",
            "1.",
            "[",
            "{\"a\" 1}",
            "\"\t\"",
            "nan",
            "1 2",
            "\u{a0}1",
            "[1]]",
            "{\"a\":}",
            "-",
            "+1",
        ] {
            assert!(!is_python_json(bad), "{bad}");
        }
    }
}
