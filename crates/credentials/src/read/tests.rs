//! Unit tests for the reader's helpers: addresses, line and column positions, delimiters.

use super::row::address_problem;
use super::*;

#[test]
fn addresses() {
    assert_eq!(address_problem("terrya@contoso.edu"), None);
    assert_eq!(address_problem("a.b+c@sub.contoso.co.uk"), None);
    assert!(address_problem("terrya").is_some());
    assert!(address_problem("a@@b.com").is_some());
    assert!(address_problem("a@b").is_some());
    assert!(address_problem("a b@c.com").is_some());
    assert!(address_problem("a@-b.com").is_some());
    assert!(address_problem(".a@b.com").is_some());
    assert!(address_problem("a@b..com").is_some());
}

#[test]
fn line_and_column() {
    assert_eq!(line_col("ab\ncé\r\nx\ry", 0), (1, 1));
    assert_eq!(line_col("ab\ncé\r\nx\ry", 3), (2, 1));
    assert_eq!(line_col("ab\ncé\r\nx\ry", 6), (2, 3));
    assert_eq!(line_col("ab\ncé\r\nx\ry", 8), (3, 1));
    assert_eq!(line_col("ab\ncé\r\nx\ry", 10), (4, 1));
}

#[test]
fn delimiters_parse() {
    assert_eq!(parse_delimiter("tab").unwrap(), '\t');
    assert_eq!(parse_delimiter(";").unwrap(), ';');
    assert!(parse_delimiter("\"").is_err());
    assert!(parse_delimiter("ab").is_err());
    assert!(parse_delimiter("a").is_err());
}
