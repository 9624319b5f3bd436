//! SOAP for EWS: request bodies (escaped with quick-xml) and a small tree parser for replies.

use quick_xml::escape::escape;
use quick_xml::events::Event;

/// Exchange types namespace.
pub(crate) const NS_TYPES: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
/// Exchange messages namespace.
pub(crate) const NS_MESSAGES: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";

/// Property set of the named property holding the writer's fingerprint.
pub(crate) const FINGERPRINT_SET: &str = "4f1c7a52-5b0e-4d6a-9c3e-0365a11e9f07";
/// Name of that property.
pub(crate) const FINGERPRINT_NAME: &str = "o365migrate-fingerprint";

/// Text content, escaped.
pub(crate) fn esc(s: &str) -> String {
    escape(s).into_owned()
}

/// `<t:ExtendedFieldURI PropertyTag=".." PropertyType=".."/>`.
pub(crate) fn tag_uri(tag: &str, kind: &str) -> String {
    format!(r#"<t:ExtendedFieldURI PropertyTag="{tag}" PropertyType="{kind}"/>"#)
}

/// The fingerprint property's `ExtendedFieldURI`.
pub(crate) fn fingerprint_uri() -> String {
    format!(
        r#"<t:ExtendedFieldURI PropertySetId="{FINGERPRINT_SET}" PropertyName="{FINGERPRINT_NAME}" PropertyType="String"/>"#
    )
}

/// One `<t:ExtendedProperty>` with a value.
pub(crate) fn ext_prop(uri: &str, value: &str) -> String {
    format!(
        "<t:ExtendedProperty>{uri}<t:Value>{}</t:Value></t:ExtendedProperty>",
        esc(value)
    )
}

/// A folder reference: a distinguished id or a folder id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum FolderRef {
    Distinguished(&'static str),
    Id(String),
}

impl FolderRef {
    /// How a folder handle stores it: `#inbox` or the EWS id.
    pub(crate) fn encode(&self) -> String {
        match self {
            Self::Distinguished(d) => format!("#{d}"),
            Self::Id(id) => id.clone(),
        }
    }

    pub(crate) fn decode(s: &str) -> Self {
        match s.strip_prefix('#') {
            Some(d) => match DISTINGUISHED.iter().find(|x| **x == d) {
                Some(x) => Self::Distinguished(x),
                None => Self::Id(s.to_string()),
            },
            None => Self::Id(s.to_string()),
        }
    }

    pub(crate) fn xml(&self) -> String {
        match self {
            Self::Distinguished(d) => format!(r#"<t:DistinguishedFolderId Id="{d}"/>"#),
            Self::Id(id) => format!(r#"<t:FolderId Id="{}"/>"#, esc(id)),
        }
    }
}

const DISTINGUISHED: [&str; 6] = [
    "inbox",
    "sentitems",
    "deleteditems",
    "junkemail",
    "drafts",
    "msgfolderroot",
];

/// The whole envelope around `body`.
pub(crate) fn envelope(version: &str, impersonate: Option<&str>, body: &str) -> String {
    let imp = impersonate
        .map(|smtp| {
            format!(
                "<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>",
                esc(smtp)
            )
        })
        .unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="{NS_TYPES}" xmlns:m="{NS_MESSAGES}"><soap:Header><t:RequestServerVersion Version="{}"/>{imp}</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"#,
        esc(version)
    )
}

/// FindFolder: the direct children of `parent` with their display names.
pub(crate) fn find_folder(parent: &FolderRef, offset: usize) -> String {
    format!(
        r#"<m:FindFolder Traversal="Shallow"><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="folder:DisplayName"/></t:AdditionalProperties></m:FolderShape><m:IndexedPageFolderView MaxEntriesReturned="500" Offset="{offset}" BasePoint="Beginning"/><m:ParentFolderIds>{}</m:ParentFolderIds></m:FindFolder>"#,
        parent.xml()
    )
}

/// CreateFolder of one mail folder under `parent`.
pub(crate) fn create_folder(parent: &FolderRef, name: &str) -> String {
    format!(
        r#"<m:CreateFolder><m:ParentFolderId>{}</m:ParentFolderId><m:Folders><t:Folder><t:FolderClass>IPF.Note</t:FolderClass><t:DisplayName>{}</t:DisplayName></t:Folder></m:Folders></m:CreateFolder>"#,
        parent.xml(),
        esc(name)
    )
}

/// GetFolder with the total item count.
pub(crate) fn get_folder_count(folder: &FolderRef) -> String {
    format!(
        r#"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="folder:TotalCount"/></t:AdditionalProperties></m:FolderShape><m:FolderIds>{}</m:FolderIds></m:GetFolder>"#,
        folder.xml()
    )
}

fn is_equal_to(uri: &str, value: &str) -> String {
    format!(
        r#"<t:IsEqualTo>{uri}<t:FieldURIOrConstant><t:Constant Value="{}"/></t:FieldURIOrConstant></t:IsEqualTo>"#,
        esc(value)
    )
}

/// FindItem in `folder` for an item with this Message-ID (PR_INTERNET_MESSAGE_ID 0x1035) or
/// this fingerprint.
pub(crate) fn find_existing(
    folder: &FolderRef,
    message_id: Option<&str>,
    fingerprint: &str,
) -> String {
    let by_fp = is_equal_to(&fingerprint_uri(), fingerprint);
    let restriction = match message_id {
        Some(mid) => format!(
            "<t:Or>{}{by_fp}</t:Or>",
            is_equal_to(&tag_uri("0x1035", "String"), mid)
        ),
        None => by_fp,
    };
    format!(
        r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="1" Offset="0" BasePoint="Beginning"/><m:Restriction>{restriction}</m:Restriction><m:ParentFolderIds>{}</m:ParentFolderIds></m:FindItem>"#,
        folder.xml()
    )
}

/// FindItem listing a page of `folder` with the fields verify compares.
pub(crate) fn list_items(folder: &FolderRef, offset: usize) -> String {
    format!(
        r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="item:Subject"/><t:FieldURI FieldURI="message:From"/><t:FieldURI FieldURI="item:DateTimeReceived"/><t:FieldURI FieldURI="message:IsRead"/><t:FieldURI FieldURI="item:IsDraft"/><t:FieldURI FieldURI="item:Size"/><t:FieldURI FieldURI="item:Categories"/><t:FieldURI FieldURI="message:InternetMessageId"/>{}{}{}</t:AdditionalProperties></m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="500" Offset="{offset}" BasePoint="Beginning"/><m:ParentFolderIds>{}</m:ParentFolderIds></m:FindItem>"#,
        tag_uri("0x1090", "Integer"),
        tag_uri("0x1081", "Integer"),
        fingerprint_uri(),
        folder.xml()
    )
}

/// A parsed XML element (local names only; namespaces are not needed for EWS replies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) attrs: Vec<(String, String)>,
    pub(crate) text: String,
    pub(crate) children: Vec<Node>,
}

impl Node {
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    pub(crate) fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// Every descendant (depth first, self included) named `name`.
    pub(crate) fn find_all<'a>(&'a self, name: &str, out: &mut Vec<&'a Node>) {
        if self.name == name {
            out.push(self);
        }
        for c in &self.children {
            c.find_all(name, out);
        }
    }

    pub(crate) fn descendants(&self, name: &str) -> Vec<&Node> {
        let mut v = Vec::new();
        self.find_all(name, &mut v);
        v
    }

    pub(crate) fn first(&self, name: &str) -> Option<&Node> {
        self.descendants(name).into_iter().next()
    }
}

fn local(name: &[u8]) -> String {
    let n = match name.iter().rposition(|b| *b == b':') {
        Some(p) => &name[p + 1..],
        None => name,
    };
    String::from_utf8_lossy(n).into_owned()
}

/// Parses a reply into a tree. Bounded: depth at most 64.
pub(crate) fn parse(xml: &[u8]) -> Result<Node, String> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut stack: Vec<Node> = vec![Node::default()];
    let mut buf = Vec::new();
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("XML error at byte {}: {e}", reader.buffer_position()))?;
        match ev {
            Event::Start(s) | Event::Empty(s) if stack.len() > 64 => {
                let _ = s;
                return Err("XML nested too deeply".into());
            }
            Event::Start(s) => {
                stack.push(element(&s)?);
            }
            Event::Empty(s) => {
                let node = element(&s)?;
                if let Some(top) = stack.last_mut() {
                    top.children.push(node);
                }
            }
            Event::End(_) => {
                if stack.len() < 2 {
                    return Err("unbalanced XML end tag".into());
                }
                if let Some(node) = stack.pop()
                    && let Some(top) = stack.last_mut()
                {
                    top.children.push(node);
                }
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| format!("XML text: {e}"))?;
                let s = quick_xml::escape::unescape(&s)
                    .map_err(|e| format!("XML text: {e}"))?
                    .into_owned();
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                }
            }
            Event::GeneralRef(r) => {
                // Character and entity references inside text (quick-xml 0.38 reports them apart).
                let name = r.decode().map_err(|e| format!("XML reference: {e}"))?;
                let s = quick_xml::escape::unescape(&format!("&{name};"))
                    .map_err(|e| format!("XML reference: {e}"))?
                    .into_owned();
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&c));
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if stack.len() != 1 {
        return Err("XML ended inside an element".into());
    }
    stack.pop().ok_or_else(|| "empty XML".to_string())
}

fn element(s: &quick_xml::events::BytesStart<'_>) -> Result<Node, String> {
    let mut attrs = Vec::new();
    for a in s.attributes() {
        let a = a.map_err(|e| format!("XML attribute: {e}"))?;
        let v = a
            .unescape_value()
            .map_err(|e| format!("XML attribute: {e}"))?
            .into_owned();
        attrs.push((local(a.key.as_ref()), v));
    }
    Ok(Node {
        name: local(s.name().as_ref()),
        attrs,
        text: String::new(),
        children: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_escape_names_and_values() {
        let b = create_folder(&FolderRef::Distinguished("inbox"), "R&D <2024> \"x\"");
        assert!(b.contains("<t:DisplayName>R&amp;D &lt;2024&gt; &quot;x&quot;</t:DisplayName>"));
        let f = find_existing(&FolderRef::Id("AA+/=".into()), Some("<a&b@c>"), "fp");
        assert!(
            f.contains(r#"<t:Constant Value="&lt;a&amp;b@c&gt;"/>"#),
            "{f}"
        );
        assert!(f.contains(r#"PropertyTag="0x1035""#));
        let env = envelope("Exchange2016", Some("a@b.c"), "<x/>");
        assert!(parse(env.as_bytes()).is_ok());
    }

    #[test]
    fn parses_text_attributes_and_entities() {
        let n = parse(br#"<a:x xmlns:a="u"><a:y Id="1&amp;2">t &lt;3&gt; &#233;</a:y><z/></a:x>"#)
            .unwrap();
        let y = n.first("y").unwrap();
        assert_eq!(y.attr("Id"), Some("1&2"));
        assert_eq!(y.text, "t <3> é");
        assert!(n.first("z").is_some());
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a>").is_err());
    }
}
