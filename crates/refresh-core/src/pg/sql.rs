//! Quoting for SQL text: the one place identifiers and literals are spliced into statements.
//!
//! Values go in as bound parameters wherever PostgreSQL takes them; these are for what it
//! does not (names, and literals in DDL).

/// `"name"` with embedded quotes doubled, as PostgreSQL's `quote_ident` makes it (always
/// quoted, so the name keeps its case and may be a keyword).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal, as PostgreSQL's `quote_literal` makes it: quotes doubled, and with
/// backslashes the `E''` form with them doubled, so it is read the same whatever
/// `standard_conforming_strings` says. For DDL, which cannot take bound parameters.
pub fn quote_literal(value: &str) -> String {
    let doubled = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", doubled.replace('\\', "\\\\"))
    } else {
        format!("'{doubled}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_quoted_like_postgres_does() {
        assert_eq!(quote_literal("abc"), "'abc'");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal(r"a\b'"), r"E'a\\b'''");
        assert_eq!(quote_ident(r#"we"ird"#), r#""we""ird""#);
    }
}
