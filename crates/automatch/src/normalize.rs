//! String normalisation: address splitting, diacritic folding, name keys.
//!
//! Everything here is deterministic and table-driven (no locale, no
//! external Unicode database), so the same input always yields the same key.

/// Hash map with a fast hasher (keys are short strings; seeds are random
/// per process, and nothing iterates a map to produce output).
pub(crate) type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// An empty [`Map`] with room for `n` entries.
pub(crate) fn map_with<K, V>(n: usize) -> Map<K, V> {
    Map::with_capacity_and_hasher(n, foldhash::fast::RandomState::default())
}

/// Lower-cases and trims an e-mail address; `None` when it has no `@` or an
/// empty local part or domain.
pub(crate) fn address(raw: &str) -> Option<String> {
    let t = raw.trim();
    let (local, domain) = t.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() || domain.contains(char::is_whitespace) {
        return None;
    }
    Some(t.to_lowercase())
}

/// Splits a normalised address into local part and domain.
pub(crate) fn split(addr: &str) -> (&str, &str) {
    addr.rsplit_once('@').unwrap_or((addr, ""))
}

/// Strips an SMTP proxy-address prefix. Returns `(address, primary)` for
/// `SMTP:` (primary) and `smtp:` (secondary); `None` for other address types
/// (`X500:`, `SIP:`, …) or a bare value without prefix (treated as secondary
/// only when it looks like an address).
pub(crate) fn smtp_proxy(raw: &str) -> Option<(String, bool)> {
    let t = raw.trim();
    match t.split_once(':') {
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case("smtp") => {
            let primary = prefix == "SMTP";
            address(rest).map(|a| (a, primary))
        }
        Some((prefix, _)) if !prefix.contains('@') => None,
        _ => address(t).map(|a| (a, false)),
    }
}

/// Transliteration flavour for [`fold`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Translit {
    /// `ü` → `u`, `ß` → `ss`.
    Plain,
    /// German convention: `ä ö ü` → `ae oe ue`.
    German,
}

/// Folds diacritics (own table covering Latin-1 Supplement, Latin
/// Extended-A and the common Latin Extended-B letters), drops combining
/// marks, and lower-cases. Characters outside the table are lower-cased and
/// kept as they are.
pub(crate) fn fold(s: &str, mode: Translit) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(s.len());
    let mut prev: char = '\0';
    for c in s.chars() {
        if ('\u{300}'..='\u{36f}').contains(&c) {
            // Combining mark: German umlaut written as base + U+0308.
            if c == '\u{308}' && mode == Translit::German && matches!(prev, 'a' | 'o' | 'u') {
                out.push('e');
            }
            continue;
        }
        if c.is_ascii() {
            let l = c.to_ascii_lowercase();
            out.push(l);
            prev = l;
            continue;
        }
        if mode == Translit::German {
            let g = match c {
                'ä' | 'Ä' => Some("ae"),
                'ö' | 'Ö' => Some("oe"),
                'ü' | 'Ü' => Some("ue"),
                _ => None,
            };
            if let Some(g) = g {
                out.push_str(g);
                prev = 'e';
                continue;
            }
        }
        match fold_char(c) {
            Some(f) => {
                out.push_str(f);
                prev = f.chars().last().unwrap_or('\0');
            }
            None => {
                for l in c.to_lowercase() {
                    out.push(l);
                    prev = l;
                }
            }
        }
    }
    out
}

/// True when folding in German mode gives a different key than plain mode
/// (the text contains ä, ö or ü in some form).
pub(crate) fn has_umlaut(s: &str) -> bool {
    !s.is_ascii()
        && s.chars()
            .any(|c| matches!(c, 'ä' | 'Ä' | 'ö' | 'Ö' | 'ü' | 'Ü' | '\u{308}'))
}

/// Both transliterations of `s` (one entry when they agree), folded with `f`.
pub(crate) fn variants(s: &str, umlauts: bool, f: impl Fn(&str) -> String) -> Vec<String> {
    let plain = f(&fold(s, Translit::Plain));
    if umlauts && has_umlaut(s) {
        let german = f(&fold(s, Translit::German));
        if german != plain {
            return vec![plain, german];
        }
    }
    vec![plain]
}

/// Keeps only letters and digits (after folding): `"O'Brien"` → `"obrien"`,
/// `"van der Berg"` → `"vanderberg"`.
pub(crate) fn alnum(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).collect()
}

/// Token-normalised display name: folded, punctuation dropped, tokens sorted
/// so "Smith, John" equals "John Smith".
pub(crate) fn display_key(s: &str) -> String {
    let mut tokens: Vec<String> = s
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    tokens.sort();
    tokens.join(" ")
}

fn fold_char(c: char) -> Option<&'static str> {
    Some(match c {
        'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' | 'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'Ā' | 'ā' | 'Ă'
        | 'ă' | 'Ą' | 'ą' | 'Ǎ' | 'ǎ' => "a",
        'Æ' | 'æ' => "ae",
        'Ç' | 'ç' | 'Ć' | 'ć' | 'Ĉ' | 'ĉ' | 'Ċ' | 'ċ' | 'Č' | 'č' => "c",
        'Ð' | 'ð' | 'Ď' | 'ď' | 'Đ' | 'đ' => "d",
        'È' | 'É' | 'Ê' | 'Ë' | 'è' | 'é' | 'ê' | 'ë' | 'Ē' | 'ē' | 'Ĕ' | 'ĕ' | 'Ė' | 'ė' | 'Ę'
        | 'ę' | 'Ě' | 'ě' => "e",
        'Ĝ' | 'ĝ' | 'Ğ' | 'ğ' | 'Ġ' | 'ġ' | 'Ģ' | 'ģ' => "g",
        'Ĥ' | 'ĥ' | 'Ħ' | 'ħ' => "h",
        'Ì' | 'Í' | 'Î' | 'Ï' | 'ì' | 'í' | 'î' | 'ï' | 'Ĩ' | 'ĩ' | 'Ī' | 'ī' | 'Ĭ' | 'ĭ' | 'Į'
        | 'į' | 'İ' | 'ı' | 'Ǐ' | 'ǐ' => "i",
        'Ĳ' | 'ĳ' => "ij",
        'Ĵ' | 'ĵ' => "j",
        'Ķ' | 'ķ' | 'ĸ' => "k",
        'Ĺ' | 'ĺ' | 'Ļ' | 'ļ' | 'Ľ' | 'ľ' | 'Ŀ' | 'ŀ' | 'Ł' | 'ł' => "l",
        'Ñ' | 'ñ' | 'Ń' | 'ń' | 'Ņ' | 'ņ' | 'Ň' | 'ň' | 'ŉ' | 'Ŋ' | 'ŋ' => "n",
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' | 'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'Ō' | 'ō' | 'Ŏ'
        | 'ŏ' | 'Ő' | 'ő' | 'Ǒ' | 'ǒ' => "o",
        'Œ' | 'œ' => "oe",
        'Ŕ' | 'ŕ' | 'Ŗ' | 'ŗ' | 'Ř' | 'ř' => "r",
        'Ś' | 'ś' | 'Ŝ' | 'ŝ' | 'Ş' | 'ş' | 'Š' | 'š' | 'Ș' | 'ș' | 'ſ' => "s",
        'ß' | 'ẞ' => "ss",
        'Ţ' | 'ţ' | 'Ť' | 'ť' | 'Ŧ' | 'ŧ' | 'Ț' | 'ț' => "t",
        'Þ' | 'þ' => "th",
        'Ù' | 'Ú' | 'Û' | 'Ü' | 'ù' | 'ú' | 'û' | 'ü' | 'Ũ' | 'ũ' | 'Ū' | 'ū' | 'Ŭ' | 'ŭ' | 'Ů'
        | 'ů' | 'Ű' | 'ű' | 'Ų' | 'ų' | 'Ǔ' | 'ǔ' => "u",
        'Ŵ' | 'ŵ' => "w",
        'Ý' | 'ý' | 'ÿ' | 'Ÿ' | 'Ŷ' | 'ŷ' => "y",
        'Ź' | 'ź' | 'Ż' | 'ż' | 'Ž' | 'ž' => "z",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_table() {
        let cases = [
            ("Müller", Translit::Plain, "muller"),
            ("Müller", Translit::German, "mueller"),
            ("Mu\u{308}ller", Translit::German, "mueller"),
            ("Mu\u{308}ller", Translit::Plain, "muller"),
            ("Straße", Translit::Plain, "strasse"),
            ("Łukasz Żółć", Translit::Plain, "lukasz zolc"),
            ("José", Translit::Plain, "jose"),
            ("Ștefan Țăran", Translit::Plain, "stefan taran"),
            ("Søren Ærø", Translit::Plain, "soren aero"),
            ("ИВАН", Translit::Plain, "иван"),
        ];
        for (input, mode, want) in cases {
            assert_eq!(fold(input, mode), want, "{input} {mode:?}");
        }
    }

    #[test]
    fn proxy_prefixes() {
        assert_eq!(
            smtp_proxy("SMTP:Alice@New.Example"),
            Some(("alice@new.example".into(), true))
        );
        assert_eq!(
            smtp_proxy("smtp:al@new.example"),
            Some(("al@new.example".into(), false))
        );
        assert_eq!(smtp_proxy("X500:/o=Org/cn=alice"), None);
        assert_eq!(smtp_proxy("SIP:alice@new.example"), None);
        assert_eq!(smtp_proxy("smtp:not-an-address"), None);
    }

    #[test]
    fn display_keys_ignore_order_and_punctuation() {
        assert_eq!(display_key("smith, john"), display_key("john smith"));
        assert_eq!(display_key("  john   smith "), "john smith");
    }
}
