//! The protocol without I/O: request bodies, and multistatus answers parsed (namespace-aware,
//! with quick-xml) into the crate's types.

use quick_xml::escape::escape;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use crate::href::Href;
use crate::model::{Collection, CollectionKind, Item, ItemRef, SyncChanges};

/// `DAV:`
pub(crate) const DAV: &str = "DAV:";
/// CardDAV (RFC 6352).
pub(crate) const CARDDAV: &str = "urn:ietf:params:xml:ns:carddav";
/// CalDAV (RFC 4791).
pub(crate) const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
/// Apple's calendarserver.org extensions (`getctag`).
pub(crate) const CS: &str = "http://calendarserver.org/ns/";

/// Deepest element nesting accepted (a multistatus needs about 8).
const MAX_DEPTH: usize = 64;

/// An XML element: namespace, local name, children and its text (character data directly
/// inside it, concatenated, unmodified).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Element {
    pub(crate) ns: String,
    pub(crate) name: String,
    /// Attributes by local name (namespaces of attributes are not needed here).
    pub(crate) attrs: Vec<(String, String)>,
    pub(crate) children: Vec<Element>,
    pub(crate) text: String,
}

impl Element {
    pub(crate) fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    pub(crate) fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    pub(crate) fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    /// Whether any descendant (at any depth) is `ns:name`.
    pub(crate) fn has_descendant(&self, ns: &str, name: &str) -> bool {
        self.children
            .iter()
            .any(|c| c.is(ns, name) || c.has_descendant(ns, name))
    }

    /// The value of attribute `name`.
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The trimmed text, `None` when empty.
    pub(crate) fn trimmed(&self) -> Option<String> {
        let t = self.text.trim();
        (!t.is_empty()).then(|| t.to_owned())
    }
}

/// Parses a whole XML document into its root element.
pub(crate) fn parse_document(body: &[u8]) -> Result<Element, String> {
    let mut reader = NsReader::from_reader(body);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let position = reader.buffer_position();
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| format!("at byte {position}: {e}"))?;
        let ns_of = |ns: ResolveResult<'_>| match ns {
            ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
            _ => String::new(),
        };
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let mut attrs = Vec::new();
                for a in e.attributes() {
                    let a = a.map_err(|e| format!("at byte {position}: {e}"))?;
                    let value = a
                        .unescape_value()
                        .map_err(|e| format!("at byte {position}: {e}"))?;
                    attrs.push((
                        String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned(),
                        value.into_owned(),
                    ));
                }
                let el = Element {
                    ns: ns_of(ns),
                    name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                    attrs,
                    ..Element::default()
                };
                if root.is_some() {
                    return Err("content after the root element".into());
                }
                if empty {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(el),
                        None => root = Some(el),
                    }
                } else {
                    if stack.len() >= MAX_DEPTH {
                        return Err(format!("elements nested deeper than {MAX_DEPTH}"));
                    }
                    stack.push(el);
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("an end tag without a start tag")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let text = t.decode().map_err(|e| format!("at byte {position}: {e}"))?;
                    top.text.push_str(&text);
                } else if !t.iter().all(u8::is_ascii_whitespace) {
                    return Err("text outside the root element".into());
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    let text = t.decode().map_err(|e| format!("at byte {position}: {e}"))?;
                    top.text.push_str(&text);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .map_err(|e| format!("at byte {position}: {e}"))?
                        .map(String::from)
                } else {
                    let name = r.decode().map_err(|e| format!("at byte {position}: {e}"))?;
                    quick_xml::escape::resolve_xml_entity(&name).map(str::to_owned)
                };
                let text = resolved
                    .ok_or_else(|| format!("at byte {position}: unknown entity reference"))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text);
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    root.ok_or_else(|| "no XML element in the answer".into())
}

/// One `<response>` of a multistatus (one per href when a response lists several).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) href: Href,
    /// The response-level `<status>` (e.g. 404 for a deleted member in sync-collection).
    pub(crate) status: Option<u16>,
    /// Properties found with status 2xx.
    pub(crate) props: Vec<Element>,
    /// Properties reported with another status (404: not there), by name.
    pub(crate) missing: Vec<(String, String, u16)>,
}

impl Response {
    pub(crate) fn prop(&self, ns: &str, name: &str) -> Option<&Element> {
        self.props.iter().find(|p| p.is(ns, name))
    }

    fn prop_text(&self, ns: &str, name: &str) -> Option<String> {
        self.prop(ns, name).and_then(Element::trimmed)
    }

    /// The hrefs inside a property (`current-user-principal`, home sets).
    fn prop_hrefs(&self, base: &Href, ns: &str, name: &str) -> Vec<Href> {
        self.prop(ns, name)
            .map(|p| {
                p.children_named(DAV, "href")
                    .filter_map(|h| Href::resolve(base, &h.text))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn ok(&self) -> bool {
        self.status.is_none_or(|s| (200..300).contains(&s))
    }
}

/// A parsed `DAV:multistatus`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Multistatus {
    /// The request URL hrefs were resolved against.
    pub(crate) base: Href,
    pub(crate) responses: Vec<Response>,
    /// The top-level `<sync-token>` (sync-collection).
    pub(crate) sync_token: Option<String>,
}

/// `HTTP/1.1 404 Not Found` → 404.
fn status_code(line: &str) -> Option<u16> {
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Parses a multistatus answer; hrefs are resolved against `base` (the request URL).
pub(crate) fn parse_multistatus(body: &[u8], base: &Href) -> Result<Multistatus, String> {
    let root = parse_document(body)?;
    if !root.is(DAV, "multistatus") {
        return Err(format!(
            "the root element is {{{}}}{}, not {{DAV:}}multistatus",
            root.ns, root.name
        ));
    }
    let mut responses = Vec::new();
    for r in root.children_named(DAV, "response") {
        let status = r.child(DAV, "status").and_then(|s| status_code(&s.text));
        let mut props = Vec::new();
        let mut missing = Vec::new();
        for ps in r.children_named(DAV, "propstat") {
            let code = ps
                .child(DAV, "status")
                .and_then(|s| status_code(&s.text))
                .unwrap_or(200);
            for prop in ps.children_named(DAV, "prop") {
                for p in &prop.children {
                    if (200..300).contains(&code) {
                        props.push(p.clone());
                    } else {
                        missing.push((p.ns.clone(), p.name.clone(), code));
                    }
                }
            }
        }
        let hrefs: Vec<&Element> = r.children_named(DAV, "href").collect();
        if hrefs.is_empty() {
            return Err("a <response> without <href>".into());
        }
        for h in hrefs {
            let href = Href::resolve(base, &h.text)
                .ok_or_else(|| format!("the href {:?} is not a usable URL", h.text.trim()))?;
            responses.push(Response {
                href,
                status,
                props: props.clone(),
                missing: missing.clone(),
            });
        }
    }
    let sync_token = root.child(DAV, "sync-token").and_then(Element::trimmed);
    Ok(Multistatus {
        base: base.clone(),
        responses,
        sync_token,
    })
}

// ---- request bodies ----------------------------------------------------------------------

const XML_DECL: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n";

/// PROPFIND Depth 0 for `current-user-principal` (RFC 5397).
pub(crate) fn propfind_principal() -> String {
    format!(
        "{XML_DECL}<d:propfind xmlns:d=\"DAV:\"><d:prop><d:current-user-principal/><d:resourcetype/></d:prop></d:propfind>"
    )
}

/// PROPFIND Depth 0 on a principal for both home sets.
pub(crate) fn propfind_home_sets() -> String {
    format!(
        "{XML_DECL}<d:propfind xmlns:d=\"DAV:\" xmlns:card=\"{CARDDAV}\" xmlns:cal=\"{CALDAV}\"><d:prop><card:addressbook-home-set/><cal:calendar-home-set/></d:prop></d:propfind>"
    )
}

/// PROPFIND Depth 1 on a home set: what discovery reports of each collection.
pub(crate) fn propfind_collections() -> String {
    format!(
        "{XML_DECL}<d:propfind xmlns:d=\"DAV:\" xmlns:cal=\"{CALDAV}\" xmlns:cs=\"{CS}\"><d:prop><d:resourcetype/><d:displayname/><cs:getctag/><d:sync-token/><cal:supported-calendar-component-set/><d:supported-report-set/></d:prop></d:propfind>"
    )
}

/// PROPFIND Depth 1 on a collection: every member's etag.
pub(crate) fn propfind_etags() -> String {
    format!(
        "{XML_DECL}<d:propfind xmlns:d=\"DAV:\"><d:prop><d:resourcetype/><d:getetag/></d:prop></d:propfind>"
    )
}

/// REPORT `sync-collection` (RFC 6578) from `token` (empty: initial sync), level 1.
pub(crate) fn sync_collection(token: &str) -> String {
    format!(
        "{XML_DECL}<d:sync-collection xmlns:d=\"DAV:\"><d:sync-token>{}</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>",
        escape(token)
    )
}

/// REPORT `addressbook-multiget` (RFC 6352 8.7) or `calendar-multiget` (RFC 4791 7.9).
pub(crate) fn multiget(kind: CollectionKind, hrefs: &[Href]) -> String {
    let (ns, report, data) = match kind {
        CollectionKind::AddressBook => (CARDDAV, "addressbook-multiget", "address-data"),
        CollectionKind::Calendar => (CALDAV, "calendar-multiget", "calendar-data"),
    };
    let mut body = format!(
        "{XML_DECL}<x:{report} xmlns:d=\"DAV:\" xmlns:x=\"{ns}\"><d:prop><d:getetag/><x:{data}/></d:prop>"
    );
    for h in hrefs {
        body.push_str("<d:href>");
        body.push_str(&escape(h.encoded_path()));
        body.push_str("</d:href>");
    }
    body.push_str(&format!("</x:{report}>"));
    body
}

// ---- reading answers ---------------------------------------------------------------------

/// The `current-user-principal` of a PROPFIND answer.
pub(crate) fn principal(ms: &Multistatus) -> Option<Href> {
    ms.responses.iter().find_map(|r| {
        r.prop_hrefs(&ms.base, DAV, "current-user-principal")
            .into_iter()
            .next()
    })
}

/// `(addressbook-home-set, calendar-home-set)` of a principal's PROPFIND answer.
pub(crate) fn home_sets(ms: &Multistatus) -> (Vec<Href>, Vec<Href>) {
    let mut books = Vec::new();
    let mut cals = Vec::new();
    for r in &ms.responses {
        for h in r.prop_hrefs(&ms.base, CARDDAV, "addressbook-home-set") {
            push_unique(&mut books, h.as_collection());
        }
        for h in r.prop_hrefs(&ms.base, CALDAV, "calendar-home-set") {
            push_unique(&mut cals, h.as_collection());
        }
    }
    (books, cals)
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// The address books and calendars in a home set's Depth 1 answer (the home itself and
/// other collections are left out).
pub(crate) fn collections(ms: &Multistatus) -> Vec<Collection> {
    let mut out = Vec::new();
    for r in &ms.responses {
        if !r.ok() {
            continue;
        }
        let Some(rt) = r.prop(DAV, "resourcetype") else {
            continue;
        };
        let kind = if rt.child(CARDDAV, "addressbook").is_some() {
            CollectionKind::AddressBook
        } else if rt.child(CALDAV, "calendar").is_some() {
            CollectionKind::Calendar
        } else {
            continue;
        };
        let components = match kind {
            CollectionKind::Calendar => r
                .prop(CALDAV, "supported-calendar-component-set")
                .map(|set| {
                    set.children_named(CALDAV, "comp")
                        .filter_map(|c| c.attr("name"))
                        .map(|n| n.trim().to_ascii_uppercase())
                        .collect()
                })
                .unwrap_or_default(),
            CollectionKind::AddressBook => Vec::new(),
        };
        out.push(Collection {
            href: r.href.as_collection(),
            display_name: r.prop_text(DAV, "displayname"),
            kind,
            components,
            ctag: r.prop_text(CS, "getctag"),
            sync_token: r.prop_text(DAV, "sync-token"),
            supports_sync: r
                .prop(DAV, "supported-report-set")
                .is_some_and(|s| s.has_descendant(DAV, "sync-collection")),
        });
    }
    out.sort_by(|a, b| a.href.cmp(&b.href));
    out
}

/// The members of a collection with their etags (from a Depth 1 PROPFIND); the collection
/// itself and sub-collections are left out.
pub(crate) fn item_refs(ms: &Multistatus, collection: &Href) -> Vec<ItemRef> {
    let collection = collection.as_collection();
    let mut out: Vec<ItemRef> = ms
        .responses
        .iter()
        .filter(|r| r.ok() && r.href.as_collection() != collection)
        .filter(|r| {
            r.prop(DAV, "resourcetype")
                .is_none_or(|rt| rt.child(DAV, "collection").is_none())
        })
        .map(|r| ItemRef {
            href: r.href.clone(),
            etag: r.prop_text(DAV, "getetag"),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The changes in a `sync-collection` answer; `None` when it carries no new token.
pub(crate) fn sync_changes(ms: &Multistatus, collection: &Href) -> Option<SyncChanges> {
    let collection = collection.as_collection();
    let mut changes = SyncChanges {
        token: ms.sync_token.clone()?,
        ..SyncChanges::default()
    };
    for r in &ms.responses {
        if r.href.as_collection() == collection {
            // RFC 6578 3.6: a 507 on the request URI says the answer was truncated.
            if r.status == Some(507) {
                changes.truncated = true;
            }
            continue;
        }
        match r.status {
            Some(404) => changes.deleted.push(r.href.clone()),
            Some(s) if !(200..300).contains(&s) => {}
            _ => {
                if r.prop(DAV, "resourcetype")
                    .is_some_and(|rt| rt.child(DAV, "collection").is_some())
                {
                    continue;
                }
                changes.changed.push(ItemRef {
                    href: r.href.clone(),
                    etag: r.prop_text(DAV, "getetag"),
                })
            }
        }
    }
    changes.changed.sort();
    changes.deleted.sort();
    Some(changes)
}

/// The items of a multiget answer, and the hrefs it says are not there (404).
pub(crate) fn multiget_items(ms: &Multistatus, kind: CollectionKind) -> (Vec<Item>, Vec<Href>) {
    let (ns, data) = match kind {
        CollectionKind::AddressBook => (CARDDAV, "address-data"),
        CollectionKind::Calendar => (CALDAV, "calendar-data"),
    };
    let mut items = Vec::new();
    let mut missing = Vec::new();
    for r in &ms.responses {
        if r.status == Some(404) {
            missing.push(r.href.clone());
            continue;
        }
        if let Some(d) = r.prop(ns, data) {
            items.push(Item {
                href: r.href.clone(),
                etag: r.prop_text(DAV, "getetag"),
                data: d.text.clone().into_bytes(),
            });
        } else if r
            .missing
            .iter()
            .any(|(n, m, s)| n == ns && m == data && *s == 404)
        {
            missing.push(r.href.clone());
        }
    }
    (items, missing)
}

/// Whether an error body names the `DAV:valid-sync-token` precondition.
pub(crate) fn is_valid_sync_token_error(body: &[u8]) -> bool {
    parse_document(body).is_ok_and(|root| root.has_descendant(DAV, "valid-sync-token"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Href {
        Href::parse("https://dav.example.com/alice/contacts/").unwrap()
    }

    #[test]
    fn request_bodies_are_well_formed_and_escape_what_they_carry() {
        for body in [
            propfind_principal(),
            propfind_home_sets(),
            propfind_collections(),
            propfind_etags(),
            sync_collection("http://x/sync?a=1&b=<2>"),
        ] {
            parse_document(body.as_bytes()).unwrap_or_else(|e| panic!("{e}: {body}"));
        }
        let root = parse_document(sync_collection("t&<1>").as_bytes()).unwrap();
        assert!(root.is(DAV, "sync-collection"));
        assert_eq!(root.child(DAV, "sync-token").unwrap().text, "t&<1>");

        let hrefs = [
            Href::resolve(&base(), "a&b.vcf").unwrap(),
            Href::resolve(&base(), "B%C3%A9a%20Ng.vcf").unwrap(),
        ];
        let root =
            parse_document(multiget(CollectionKind::AddressBook, &hrefs).as_bytes()).unwrap();
        assert!(root.is(CARDDAV, "addressbook-multiget"));
        let sent: Vec<Href> = root
            .children_named(DAV, "href")
            .map(|h| Href::resolve(&base(), &h.text).unwrap())
            .collect();
        assert_eq!(sent, hrefs);
        let root = parse_document(multiget(CollectionKind::Calendar, &hrefs).as_bytes()).unwrap();
        assert!(root.is(CALDAV, "calendar-multiget"));
        assert!(root.has_descendant(CALDAV, "calendar-data"));
    }

    #[test]
    fn bad_xml_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"<",
            b"<a>",
            b"</a>",
            b"<a></b>",
            b"<a>&bogus;</a>",
            b"<a/><b/>",
            b"text",
        ] {
            assert!(
                parse_multistatus(bad, &base()).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        let err = parse_document(deep.as_bytes()).unwrap_err();
        assert!(err.contains("nested deeper"), "{err}");
    }

    #[test]
    fn a_404_propstat_is_not_there() {
        let body = br#"<multistatus xmlns="DAV:"><response><href>a.vcf</href>
            <propstat><prop><getetag>"1"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat>
            <propstat><prop><displayname/></prop><status>HTTP/1.1 404 Not Found</status></propstat>
            </response></multistatus>"#;
        let ms = parse_multistatus(body, &base()).unwrap();
        let r = &ms.responses[0];
        assert!(r.prop(DAV, "getetag").is_some());
        assert!(r.prop(DAV, "displayname").is_none());
        assert_eq!(
            r.missing,
            vec![(DAV.to_owned(), "displayname".to_owned(), 404)]
        );
    }
}
