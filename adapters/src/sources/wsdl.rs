//! Reading a WSDL 1.1 service description to propose a SOAP pull source
//! (`gateway sources from-wsdl`): the operations, their SOAP version, action and endpoint, a
//! request envelope template with the input element's children as placeholders, and the path
//! of the repeating record element of the answer (the element with `maxOccurs="unbounded"`).
//!
//! Documents are fetched over http(s) (timeout, size limit) or read from files, and parsed with
//! quick-xml without any DTD (a `DOCTYPE` is refused, so no entity is ever expanded).
//! `wsdl:import` and `xsd:import` / `xsd:include` with a location are followed relative to the
//! document that names them, to a bounded depth and number of documents.

use quick_xml::events::{BytesStart, Event};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;
use url::Url;

const WSDL_NS: &str = "http://schemas.xmlsoap.org/wsdl/";
const SOAP11_BINDING_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap/";
const SOAP12_BINDING_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap12/";
const XSD_NS: &str = "http://www.w3.org/2001/XMLSchema";
const SOAP11_ENV_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12_ENV_NS: &str = "http://www.w3.org/2003/05/soap-envelope";

/// Limits of fetching and following documents.
#[derive(Debug, Clone)]
pub struct WsdlLimits {
    /// Largest document accepted, bytes (default 8 MiB).
    pub max_bytes: usize,
    /// Deepest chain of imports followed (default 5).
    pub max_depth: usize,
    /// Most documents read in all (default 32).
    pub max_documents: usize,
    /// Longest wait for one document (default 30 s).
    pub timeout: Duration,
    /// Longest wait for a connection (default 10 s).
    pub connect_timeout: Duration,
    /// Deepest element nesting (default 64).
    pub max_nesting: usize,
}

impl Default for WsdlLimits {
    fn default() -> Self {
        WsdlLimits {
            max_bytes: 8 * 1024 * 1024,
            max_depth: 5,
            max_documents: 32,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_nesting: 64,
        }
    }
}

/// Why a WSDL could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WsdlError {
    /// The document could not be fetched or read.
    #[error("无法读取 {location}：{message} / cannot read {location}: {message}")]
    Fetch {
        /// URL or file.
        location: String,
        /// What went wrong.
        message: String,
    },
    /// The document is larger than the limit.
    #[error("{location} 超过 {limit} 字节的上限 / {location} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// URL or file.
        location: String,
        /// The limit.
        limit: usize,
    },
    /// The document is not well-formed XML, or holds a DTD.
    #[error("{location} 不是可接受的 XML：{message} / {location} is not acceptable XML: {message}")]
    Xml {
        /// URL or file.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// The root element is not `wsdl:definitions`.
    #[error("{0} 不是 WSDL 1.1 文档（根元素应为 wsdl:definitions） / {0} is not a WSDL 1.1 document (root must be wsdl:definitions)")]
    NotWsdl(String),
    /// Imports nest deeper than the limit, or too many documents.
    #[error("导入层次或文档数超过上限（{0}） / imports nest too deep or name too many documents ({0})")]
    TooManyImports(String),
    /// No SOAP operation found.
    #[error("WSDL 中没有 SOAP 绑定的操作 / the WSDL has no operation with a SOAP binding")]
    NoOperations,
    /// `--operation` names no operation.
    #[error("没有名为 {name} 的操作（可用：{available}） / no operation {name} (available: {available})")]
    UnknownOperation {
        /// The name asked for.
        name: String,
        /// The operations there are.
        available: String,
    },
}

/// A parsed element: namespace-resolved name, attributes, children, text.
#[derive(Debug, Clone, Default)]
struct Node {
    ns: String,
    local: String,
    attrs: Vec<(String, String)>,
    /// Namespace prefixes in scope (prefix → URI; "" for the default namespace).
    scope: HashMap<String, String>,
    children: Vec<Node>,
}

impl Node {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn is(&self, ns: &str, local: &str) -> bool {
        self.ns == ns && self.local == local
    }

    fn kids<'a>(&'a self, ns: &'a str, local: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.is(ns, local))
    }

    /// A QName attribute value resolved to (namespace, local name).
    fn qname(&self, value: &str) -> (String, String) {
        match value.split_once(':') {
            Some((prefix, local)) => (self.scope.get(prefix).cloned().unwrap_or_default(), local.to_string()),
            None => (self.scope.get("").cloned().unwrap_or_default(), value.to_string()),
        }
    }
}

fn xml_error(location: &str, message: impl Into<String>) -> WsdlError {
    WsdlError::Xml {
        location: location.to_string(),
        message: message.into(),
    }
}

fn start_node(e: &BytesStart<'_>, parent_scope: &HashMap<String, String>, location: &str) -> Result<Node, WsdlError> {
    let mut scope = parent_scope.clone();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|err| xml_error(location, err.to_string()))?;
        let key = a.key.as_ref().to_string();
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|err| xml_error(location, err.to_string()))?
            .into_owned();
        if key == "xmlns" {
            scope.insert(String::new(), value);
        } else if let Some(p) = key.strip_prefix("xmlns:") {
            scope.insert(p.to_string(), value);
        } else {
            attrs.push((key, value));
        }
    }
    let name = e.name().as_ref().to_string();
    let (prefix, local) = match name.split_once(':') {
        Some((p, l)) => (p.to_string(), l.to_string()),
        None => (String::new(), name),
    };
    let ns = scope.get(&prefix).cloned().unwrap_or_default();
    Ok(Node {
        ns,
        local,
        attrs,
        scope,
        children: Vec::new(),
    })
}

/// Parse a document into its root element; any DOCTYPE is refused.
fn parse_document(bytes: &[u8], location: &str, max_nesting: usize) -> Result<Node, WsdlError> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    reader.config_mut().trim_text(true);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut buf = Vec::new();
    let empty = HashMap::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| xml_error(location, format!("{e} (at byte {})", reader.buffer_position())))?;
        match event {
            Event::DocType(_) => {
                return Err(xml_error(
                    location,
                    "含 DOCTYPE/DTD，拒收 / holds a DOCTYPE/DTD, refused",
                ));
            }
            Event::Start(e) => {
                if stack.len() >= max_nesting {
                    return Err(xml_error(location, "元素嵌套太深 / elements nest too deep"));
                }
                let scope = stack.last().map_or(&empty, |n| &n.scope);
                let node = start_node(&e, scope, location)?;
                stack.push(node);
            }
            Event::Empty(e) => {
                let scope = stack.last().map_or(&empty, |n| &n.scope);
                let node = start_node(&e, scope, location)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::End(_) => {
                let node = stack
                    .pop()
                    .ok_or_else(|| xml_error(location, "多余的结束标签 / stray end tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err(xml_error(location, "文档不完整 / the document ends early"));
    }
    root.ok_or_else(|| xml_error(location, "没有根元素 / no root element"))
}

/// The document in UTF-8: one declaring another encoding in its prolog (`GBK`, `GB18030`, …) is
/// decoded; a byte that is not valid in it is an error.
fn to_utf8(bytes: Vec<u8>, location: &str) -> Result<Vec<u8>, WsdlError> {
    let Some(label) = normalizer::xml_tree::declared_encoding(&bytes) else {
        return Ok(bytes);
    };
    let encoding = encoding_rs::Encoding::for_label(label.as_bytes())
        .ok_or_else(|| xml_error(location, format!("未知的字符集 {label} / unknown encoding {label}")))?;
    if encoding == encoding_rs::UTF_8 {
        return Ok(bytes);
    }
    let (text, _, had_errors) = encoding.decode(&bytes);
    if had_errors {
        return Err(xml_error(
            location,
            format!("含有不属于 {label} 的字节 / holds bytes that are not valid {label}"),
        ));
    }
    Ok(text.into_owned().into_bytes())
}

/// Where a document is: a URL or a local file.
#[derive(Debug, Clone)]
enum Location {
    Url(Url),
    File(std::path::PathBuf),
}

impl Location {
    fn parse(text: &str) -> Location {
        match Url::parse(text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Location::Url(u),
            Ok(u) if u.scheme() == "file" => match u.to_file_path() {
                Ok(p) => Location::File(p),
                Err(()) => Location::File(text.into()),
            },
            _ => Location::File(text.into()),
        }
    }

    fn join(&self, relative: &str) -> Location {
        match self {
            Location::Url(base) => match base.join(relative) {
                Ok(u) => Location::Url(u),
                Err(_) => Location::File(relative.into()),
            },
            Location::File(path) => match Url::parse(relative) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Location::Url(u),
                _ => Location::File(path.parent().map_or_else(|| relative.into(), |d| d.join(relative))),
            },
        }
    }

    fn display(&self) -> String {
        match self {
            Location::Url(u) => u.to_string(),
            Location::File(p) => p.display().to_string(),
        }
    }
}

async fn fetch(location: &Location, limits: &WsdlLimits, client: &reqwest::Client) -> Result<Vec<u8>, WsdlError> {
    let shown = location.display();
    let fetch_error = |message: String| WsdlError::Fetch {
        location: shown.clone(),
        message,
    };
    match location {
        Location::File(path) => {
            let meta = std::fs::metadata(path).map_err(|e| fetch_error(e.to_string()))?;
            if meta.len() > limits.max_bytes as u64 {
                return Err(WsdlError::TooLarge {
                    location: shown,
                    limit: limits.max_bytes,
                });
            }
            std::fs::read(path).map_err(|e| fetch_error(e.to_string()))
        }
        Location::Url(url) => {
            let mut response = client
                .get(url.clone())
                .send()
                .await
                .map_err(|e| fetch_error(e.to_string()))?;
            if !response.status().is_success() {
                return Err(fetch_error(format!("HTTP {}", response.status())));
            }
            if response.content_length().is_some_and(|n| n > limits.max_bytes as u64) {
                return Err(WsdlError::TooLarge {
                    location: shown,
                    limit: limits.max_bytes,
                });
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| fetch_error(e.to_string()))? {
                if body.len() + chunk.len() > limits.max_bytes {
                    return Err(WsdlError::TooLarge {
                        location: shown,
                        limit: limits.max_bytes,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        }
    }
}

/// One XML Schema: its target namespace, whether local elements are qualified, its root.
#[derive(Debug)]
struct Schema {
    target_ns: String,
    qualified: bool,
    node: Node,
}

/// Every document of a service description, read.
#[derive(Debug, Default)]
struct Documents {
    wsdls: Vec<Node>,
    schemas: Vec<Schema>,
}

/// Read the WSDL at `location` (URL or file) and every document it imports.
async fn read_all(location: &str, limits: &WsdlLimits) -> Result<Documents, WsdlError> {
    let client = reqwest::Client::builder()
        .user_agent(concat!("ganzhi-gateway/", env!("CARGO_PKG_VERSION")))
        .timeout(limits.timeout)
        .connect_timeout(limits.connect_timeout)
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .map_err(|e| WsdlError::Fetch {
            location: location.to_string(),
            message: e.to_string(),
        })?;
    let mut docs = Documents::default();
    let mut seen: Vec<String> = Vec::new();
    // (location, depth, is a schema document)
    let mut queue: Vec<(Location, usize, bool)> = vec![(Location::parse(location), 0, false)];
    while let Some((loc, depth, is_schema)) = queue.pop() {
        let key = loc.display();
        if seen.contains(&key) {
            continue;
        }
        if depth > limits.max_depth || seen.len() >= limits.max_documents {
            return Err(WsdlError::TooManyImports(key));
        }
        seen.push(key.clone());
        tracing::debug!(location = %key, depth, "reading a WSDL or XSD document");
        let bytes = fetch(&loc, limits, &client).await?;
        let bytes = to_utf8(bytes, &key)?;
        let root = parse_document(&bytes, &key, limits.max_nesting)?;
        let mut schema_nodes = Vec::new();
        if is_schema || root.is(XSD_NS, "schema") {
            schema_nodes.push(root);
        } else {
            if !root.is(WSDL_NS, "definitions") {
                return Err(WsdlError::NotWsdl(key));
            }
            for import in root.kids(WSDL_NS, "import") {
                if let Some(l) = import.attr("location") {
                    queue.push((loc.join(l), depth + 1, false));
                }
            }
            for types in root.kids(WSDL_NS, "types") {
                schema_nodes.extend(types.kids(XSD_NS, "schema").cloned());
            }
            docs.wsdls.push(root);
        }
        for schema in schema_nodes {
            for child in &schema.children {
                if child.is(XSD_NS, "import") || child.is(XSD_NS, "include") {
                    if let Some(l) = child.attr("schemaLocation") {
                        queue.push((loc.join(l), depth + 1, true));
                    }
                }
            }
            docs.schemas.push(Schema {
                target_ns: schema.attr("targetNamespace").unwrap_or("").to_string(),
                qualified: schema.attr("elementFormDefault") == Some("qualified"),
                node: schema,
            });
        }
    }
    Ok(docs)
}

/// A child element of a request or answer type.
#[derive(Debug, Clone, PartialEq)]
pub struct XmlElement {
    /// Local name.
    pub name: String,
    /// Namespace when qualified, else empty.
    pub ns: String,
    /// `maxOccurs` is `unbounded` or above 1.
    pub repeated: bool,
    /// Child elements (complex types).
    pub children: Vec<XmlElement>,
}

/// One SOAP operation as a pull source would call it.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The operation's name.
    pub name: String,
    /// The binding's port name.
    pub port: String,
    /// `1.1` or `1.2`.
    pub soap_version: &'static str,
    /// The `soapAction`, when given.
    pub action: Option<String>,
    /// The port's address.
    pub endpoint: Option<String>,
    /// `document` or `rpc`.
    pub style: String,
    /// The element put in the SOAP Body of the request (its children are the parameters).
    pub input: Option<XmlElement>,
    /// The element of the answer's Body.
    pub output: Option<XmlElement>,
}

/// The SOAP operations of a service description.
#[derive(Debug, Clone)]
pub struct Service {
    /// Every operation of every SOAP port.
    pub operations: Vec<Operation>,
}

const MAX_TYPE_DEPTH: usize = 8;

impl Documents {
    fn schema_item(&self, kind: &str, ns: &str, name: &str) -> Option<(&Schema, &Node)> {
        self.schemas.iter().find_map(|s| {
            if s.target_ns != ns {
                return None;
            }
            s.node
                .children
                .iter()
                .find(|c| c.is(XSD_NS, kind) && c.attr("name") == Some(name))
                .map(|n| (s, n))
        })
    }

    /// The child elements of a complex type node (sequence, all, choice, complexContent
    /// extension, nested).
    fn type_children(&self, schema: &Schema, ty: &Node, depth: usize) -> Vec<XmlElement> {
        let mut out = Vec::new();
        if depth > MAX_TYPE_DEPTH {
            return out;
        }
        for c in &ty.children {
            if c.ns != XSD_NS {
                continue;
            }
            match c.local.as_str() {
                "sequence" | "all" | "choice" | "complexContent" | "group" => {
                    out.extend(self.type_children(schema, c, depth + 1));
                }
                "extension" | "restriction" => {
                    if let Some(base) = c.attr("base") {
                        let (ns, name) = c.qname(base);
                        if let Some((s, t)) = self.schema_item("complexType", &ns, &name) {
                            out.extend(self.type_children(s, t, depth + 1));
                        }
                    }
                    out.extend(self.type_children(schema, c, depth + 1));
                }
                "element" => {
                    if let Some(e) = self.element(schema, c, false, depth + 1) {
                        out.push(e);
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// An element declaration (or reference) with its children.
    fn element(&self, schema: &Schema, node: &Node, top: bool, depth: usize) -> Option<XmlElement> {
        let repeated = node
            .attr("maxOccurs")
            .is_some_and(|m| m == "unbounded" || m.parse::<u64>().is_ok_and(|n| n > 1));
        if let Some(r) = node.attr("ref") {
            let (ns, name) = node.qname(r);
            let (s, target) = self.schema_item("element", &ns, &name)?;
            let mut e = self.element(s, target, true, depth + 1)?;
            e.repeated |= repeated;
            return Some(e);
        }
        let name = node.attr("name")?.to_string();
        let qualified = top || schema.qualified || node.attr("form") == Some("qualified");
        let ns = if qualified {
            schema.target_ns.clone()
        } else {
            String::new()
        };
        let mut children = Vec::new();
        if depth <= MAX_TYPE_DEPTH {
            if let Some(inline) = node.kids(XSD_NS, "complexType").next() {
                children = self.type_children(schema, inline, depth + 1);
            } else if let Some(t) = node.attr("type") {
                let (tns, tname) = node.qname(t);
                if let Some((s, ty)) = self.schema_item("complexType", &tns, &tname) {
                    children = self.type_children(s, ty, depth + 1);
                }
            }
        }
        Some(XmlElement {
            name,
            ns,
            repeated,
            children,
        })
    }

    fn top_element(&self, ns: &str, name: &str) -> Option<XmlElement> {
        let (s, node) = self.schema_item("element", ns, name)?;
        self.element(s, node, true, 0)
    }

    fn complex_type(&self, ns: &str, name: &str) -> Option<Vec<XmlElement>> {
        let (s, node) = self.schema_item("complexType", ns, name)?;
        Some(self.type_children(s, node, 0))
    }

    fn wsdl_item<'s>(&'s self, kind: &str, ns: &str, name: &str) -> Option<&'s Node> {
        self.wsdls.iter().find_map(|d| {
            if d.attr("targetNamespace").unwrap_or("") != ns {
                return None;
            }
            d.children
                .iter()
                .find(|n| n.is(WSDL_NS, kind) && n.attr("name") == Some(name))
        })
    }

    /// The Body element of a message: the part's element (document), or a wrapper named
    /// `wrapper` in `wrapper_ns` holding one child per part (rpc).
    fn message_element(&self, message: &Node, rpc: bool, wrapper: &str, wrapper_ns: &str) -> Option<XmlElement> {
        let parts: Vec<&Node> = message.kids(WSDL_NS, "part").collect();
        if !rpc {
            let part = parts.first()?;
            let (ns, name) = part.qname(part.attr("element")?);
            return self.top_element(&ns, &name);
        }
        let mut children = Vec::new();
        for part in parts {
            let name = part.attr("name").unwrap_or("part").to_string();
            let inner = match part.attr("type") {
                Some(t) => {
                    let (ns, tname) = part.qname(t);
                    self.complex_type(&ns, &tname).unwrap_or_default()
                }
                None => match part.attr("element") {
                    Some(e) => {
                        let (ns, ename) = part.qname(e);
                        self.top_element(&ns, &ename).map(|e| e.children).unwrap_or_default()
                    }
                    None => Vec::new(),
                },
            };
            children.push(XmlElement {
                name,
                ns: String::new(),
                repeated: false,
                children: inner,
            });
        }
        Some(XmlElement {
            name: wrapper.to_string(),
            ns: wrapper_ns.to_string(),
            repeated: false,
            children,
        })
    }

    fn operations(&self) -> Vec<Operation> {
        let mut out = Vec::new();
        for wsdl in &self.wsdls {
            for service in wsdl.kids(WSDL_NS, "service") {
                for port in service.kids(WSDL_NS, "port") {
                    let Some(binding_ref) = port.attr("binding") else {
                        continue;
                    };
                    let (bns, bname) = port.qname(binding_ref);
                    let Some(binding) = self.wsdl_item("binding", &bns, &bname) else {
                        continue;
                    };
                    let (version, soap_ns) = if binding.kids(SOAP11_BINDING_NS, "binding").next().is_some() {
                        ("1.1", SOAP11_BINDING_NS)
                    } else if binding.kids(SOAP12_BINDING_NS, "binding").next().is_some() {
                        ("1.2", SOAP12_BINDING_NS)
                    } else {
                        continue; // an HTTP binding
                    };
                    let endpoint = port
                        .kids(soap_ns, "address")
                        .next()
                        .and_then(|a| a.attr("location"))
                        .map(str::to_string);
                    let default_style = binding
                        .kids(soap_ns, "binding")
                        .next()
                        .and_then(|b| b.attr("style"))
                        .unwrap_or("document")
                        .to_string();
                    let port_type = binding
                        .attr("type")
                        .map(|t| binding.qname(t))
                        .and_then(|(ns, n)| self.wsdl_item("portType", &ns, &n));
                    for op in binding.kids(WSDL_NS, "operation") {
                        let Some(name) = op.attr("name") else { continue };
                        let soap_op = op.kids(soap_ns, "operation").next();
                        let action = soap_op
                            .and_then(|o| o.attr("soapAction"))
                            .filter(|a| !a.is_empty())
                            .map(str::to_string);
                        let style = soap_op
                            .and_then(|o| o.attr("style"))
                            .map_or(default_style.clone(), str::to_string);
                        let rpc = style == "rpc";
                        let body_ns = |dir: &str| {
                            op.kids(WSDL_NS, dir)
                                .next()
                                .and_then(|d| d.kids(soap_ns, "body").next())
                                .and_then(|b| b.attr("namespace"))
                                .map(str::to_string)
                                .unwrap_or_else(|| wsdl.attr("targetNamespace").unwrap_or("").to_string())
                        };
                        let pt_op = port_type
                            .and_then(|pt| pt.kids(WSDL_NS, "operation").find(|o| o.attr("name") == Some(name)));
                        let message = |dir: &str| {
                            let m = pt_op?.kids(WSDL_NS, dir).next()?;
                            let (ns, n) = m.qname(m.attr("message")?);
                            self.wsdl_item("message", &ns, &n)
                        };
                        let input =
                            message("input").and_then(|m| self.message_element(m, rpc, name, &body_ns("input")));
                        let output = message("output")
                            .and_then(|m| self.message_element(m, rpc, &format!("{name}Response"), &body_ns("output")));
                        out.push(Operation {
                            name: name.to_string(),
                            port: port.attr("name").unwrap_or("").to_string(),
                            soap_version: version,
                            action,
                            endpoint: endpoint.clone(),
                            style,
                            input,
                            output,
                        });
                    }
                }
            }
        }
        out
    }
}

/// Read a WSDL 1.1 (URL or file) with its imports and list its SOAP operations.
pub async fn load(location: &str, limits: &WsdlLimits) -> Result<Service, WsdlError> {
    let docs = read_all(location, limits).await?;
    let operations = docs.operations();
    if operations.is_empty() {
        return Err(WsdlError::NoOperations);
    }
    Ok(Service { operations })
}

/// Parse a WSDL held in memory (no imports followed): for tests and tools.
pub fn parse(text: &str) -> Result<Service, WsdlError> {
    let root = parse_document(text.as_bytes(), "wsdl", WsdlLimits::default().max_nesting)?;
    if !root.is(WSDL_NS, "definitions") {
        return Err(WsdlError::NotWsdl("wsdl".into()));
    }
    let mut docs = Documents::default();
    for types in root.kids(WSDL_NS, "types") {
        for schema in types.kids(XSD_NS, "schema") {
            docs.schemas.push(Schema {
                target_ns: schema.attr("targetNamespace").unwrap_or("").to_string(),
                qualified: schema.attr("elementFormDefault") == Some("qualified"),
                node: schema.clone(),
            });
        }
    }
    docs.wsdls.push(root);
    let operations = docs.operations();
    if operations.is_empty() {
        return Err(WsdlError::NoOperations);
    }
    Ok(Service { operations })
}

impl Service {
    /// The operation to propose: the one named (SOAP 1.1 port first), else the only one, else
    /// the first whose name reads like a query (`query`, `get`, `list`, `find`, `search`, `cx`).
    pub fn pick(&self, name: Option<&str>) -> Result<&Operation, WsdlError> {
        fn by_version(ops: Vec<&Operation>) -> Option<&Operation> {
            ops.iter().find(|o| o.soap_version == "1.1").or(ops.first()).copied()
        }
        match name {
            Some(n) => by_version(self.operations.iter().filter(|o| o.name == n).collect()).ok_or_else(|| {
                WsdlError::UnknownOperation {
                    name: n.to_string(),
                    available: self.names().join(", "),
                }
            }),
            None => {
                let queries: Vec<&Operation> = self
                    .operations
                    .iter()
                    .filter(|o| {
                        let l = o.name.to_lowercase();
                        ["query", "get", "list", "find", "search", "cx"]
                            .iter()
                            .any(|p| l.starts_with(p))
                    })
                    .collect();
                by_version(queries)
                    .or_else(|| by_version(self.operations.iter().collect()))
                    .ok_or(WsdlError::NoOperations)
            }
        }
    }

    /// The distinct operation names.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.operations.iter().map(|o| o.name.clone()).collect();
        names.dedup();
        let mut unique = Vec::new();
        for n in names {
            if !unique.contains(&n) {
                unique.push(n);
            }
        }
        unique
    }
}

/// The built-in placeholder a request parameter's name suggests, if any.
pub fn placeholder_for(name: &str) -> Option<&'static str> {
    let n: String = name
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    const SINCE: &[&str] = &[
        "starttime",
        "begintime",
        "since",
        "updatedsince",
        "fromtime",
        "startdate",
        "begindate",
        "kssj",
        "qssj",
        "ksrq",
        "gxsjq",
        "gxkssj",
        "lastupdatetime",
        "updatetimefrom",
        "updatestart",
        "modifiedsince",
        "timefrom",
        "datefrom",
        "from",
    ];
    const UNTIL: &[&str] = &[
        "endtime",
        "until",
        "totime",
        "enddate",
        "jssj",
        "zzsj",
        "jsrq",
        "gxsjz",
        "gxjssj",
        "updatetimeto",
        "updateend",
        "timeto",
        "dateto",
        "to",
    ];
    const PAGE: &[&str] = &[
        "pageno",
        "pagenum",
        "page",
        "pageindex",
        "currentpage",
        "pagenumber",
        "ym",
        "dqy",
        "curpage",
    ];
    const PAGE_SIZE: &[&str] = &[
        "pagesize",
        "size",
        "limit",
        "rows",
        "perpage",
        "pagerows",
        "mys",
        "myts",
        "count",
        "maxresults",
    ];
    const OFFSET: &[&str] = &["offset", "skip", "startindex", "startrow", "firstresult"];
    const USER: &[&str] = &["username", "user", "yhm", "account", "loginname", "userid"];
    const PASSWORD: &[&str] = &["password", "pwd", "mm", "passwd", "secret"];
    for (list, placeholder) in [
        (SINCE, "since"),
        (UNTIL, "until"),
        (PAGE, "page"),
        (PAGE_SIZE, "page_size"),
        (OFFSET, "offset"),
        (USER, "username"),
        (PASSWORD, "password"),
    ] {
        if list.contains(&n.as_str()) {
            return Some(placeholder);
        }
    }
    None
}

/// A proposed SOAP pull source.
#[derive(Debug, Clone)]
pub struct SourceProposal {
    /// The `[[sources]]` block (TOML), with `envelope_template_file` when a file name was
    /// given, else `envelope_template` inline.
    pub toml: String,
    /// The request envelope template.
    pub template: String,
    /// `records_path` found in the answer's type, if any.
    pub records_path: Option<String>,
    /// Custom placeholders (request parameters that are not built in), to fill in `params`.
    pub params: Vec<String>,
}

fn escape_toml(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Prefixes for the namespaces of a template.
struct Prefixes(BTreeMap<String, String>);

impl Prefixes {
    fn prefix(&mut self, ns: &str) -> Option<String> {
        if ns.is_empty() {
            return None;
        }
        let n = self.0.len();
        Some(
            self.0
                .entry(ns.to_string())
                .or_insert_with(|| if n == 0 { "tns".into() } else { format!("ns{n}") })
                .clone(),
        )
    }
}

fn render_element(
    e: &XmlElement,
    indent: usize,
    prefixes: &mut Prefixes,
    params: &mut Vec<String>,
    used: &mut Vec<&'static str>,
    out: &mut String,
) {
    let pad = "  ".repeat(indent);
    let name = match prefixes.prefix(&e.ns) {
        Some(p) => format!("{p}:{}", e.name),
        None => e.name.clone(),
    };
    if e.children.is_empty() {
        let placeholder = match placeholder_for(&e.name) {
            Some(p) if !used.contains(&p) => {
                used.push(p);
                p.to_string()
            }
            _ => {
                if !params.contains(&e.name) {
                    params.push(e.name.clone());
                }
                e.name.clone()
            }
        };
        let _ = writeln!(out, "{pad}<{name}>{{{{{placeholder}}}}}</{name}>");
    } else {
        let _ = writeln!(out, "{pad}<{name}>");
        for c in &e.children {
            render_element(c, indent + 1, prefixes, params, used, out);
        }
        let _ = writeln!(out, "{pad}</{name}>");
    }
}

/// The path (from `Envelope`) to the first repeated element of the answer, if any.
fn records_path(output: &XmlElement) -> Option<String> {
    fn walk(e: &XmlElement, path: &str, depth: usize) -> Option<String> {
        let here = format!("{path}.{}", e.name);
        if e.repeated {
            return Some(here);
        }
        if depth > MAX_TYPE_DEPTH {
            return None;
        }
        e.children.iter().find_map(|c| walk(c, &here, depth + 1))
    }
    walk(output, "Envelope.Body", 0)
}

/// The repeated record element of the answer, if any.
fn record_element(output: &XmlElement) -> Option<&XmlElement> {
    fn walk(e: &XmlElement, depth: usize) -> Option<&XmlElement> {
        if e.repeated {
            return Some(e);
        }
        if depth > MAX_TYPE_DEPTH {
            return None;
        }
        e.children.iter().find_map(|c| walk(c, depth + 1))
    }
    walk(output, 0)
}

/// A record element's name that reads like its last-changed time.
fn is_watermark_name(name: &str) -> bool {
    let n: String = name
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    [
        "gxsj",
        "xgsj",
        "zhxgsj",
        "updatetime",
        "updatedat",
        "updated",
        "lastmodified",
        "modifytime",
        "lastupdatetime",
        "modifiedtime",
        "cdtime",
        "gengxinshijian",
    ]
    .contains(&n.as_str())
}

/// A scalar element of the answer whose name says what it is (`total`, `resultCode`, ...).
fn find_named(output: &XmlElement, names: &[&str]) -> Option<String> {
    fn walk(e: &XmlElement, path: &str, names: &[&str], depth: usize) -> Option<String> {
        let here = format!("{path}.{}", e.name);
        let n = e.name.to_lowercase();
        if e.children.is_empty() && !e.repeated && names.contains(&n.as_str()) {
            return Some(here);
        }
        if e.repeated || depth > MAX_TYPE_DEPTH {
            return None;
        }
        e.children.iter().find_map(|c| walk(c, &here, names, depth + 1))
    }
    walk(output, "Envelope.Body", names, 0)
}

impl Operation {
    /// Propose a `[[sources]]` block for this operation. `id` names the source; with
    /// `template_file` the block points to it (write [`SourceProposal::template`] there),
    /// else the template is inline.
    pub fn propose(&self, id: &str, template_file: Option<&str>) -> SourceProposal {
        let (env_ns, env_prefix) = if self.soap_version == "1.2" {
            (SOAP12_ENV_NS, "soap12")
        } else {
            (SOAP11_ENV_NS, "soapenv")
        };
        let mut prefixes = Prefixes(BTreeMap::new());
        let mut params = Vec::new();
        let mut used = Vec::new();
        let mut body = String::new();
        if let Some(input) = &self.input {
            render_element(input, 2, &mut prefixes, &mut params, &mut used, &mut body);
        }
        let mut template = String::new();
        let _ = write!(template, "<{env_prefix}:Envelope xmlns:{env_prefix}=\"{env_ns}\"");
        for (ns, p) in &prefixes.0 {
            let _ = write!(
                template,
                " xmlns:{p}=\"{}\"",
                ns.replace('&', "&amp;").replace('"', "&quot;")
            );
        }
        let _ = writeln!(template, ">");
        let _ = writeln!(template, "  <{env_prefix}:Header/>");
        let _ = writeln!(template, "  <{env_prefix}:Body>");
        template.push_str(&body);
        let _ = writeln!(template, "  </{env_prefix}:Body>");
        let _ = writeln!(template, "</{env_prefix}:Envelope>");

        let records = self.output.as_ref().and_then(records_path);
        let total = self.output.as_ref().and_then(|o| {
            find_named(
                o,
                &[
                    "total",
                    "totalcount",
                    "totalnum",
                    "totalrecords",
                    "count",
                    "zs",
                    "zts",
                    "recordcount",
                ],
            )
        });
        let status = self.output.as_ref().and_then(|o| {
            find_named(
                o,
                &[
                    "resultcode",
                    "code",
                    "retcode",
                    "returncode",
                    "statuscode",
                    "status",
                    "fhdm",
                    "ztm",
                ],
            )
        });
        let message = self.output.as_ref().and_then(|o| {
            find_named(
                o,
                &["resultmsg", "message", "msg", "retmsg", "returnmsg", "errormsg", "fhxx"],
            )
        });
        let paged = used.contains(&"page") || used.contains(&"offset");

        let mut t = String::new();
        let _ = writeln!(
            t,
            "# 由 gateway sources from-wsdl 根据 WSDL 提议（操作 {}，端口 {}，{} 风格，SOAP {}），请核对。",
            self.name, self.port, self.style, self.soap_version
        );
        let _ = writeln!(
            t,
            "# Proposed by `gateway sources from-wsdl` (operation {}, port {}, {} style, SOAP {}): check it.",
            self.name, self.port, self.style, self.soap_version
        );
        let _ = writeln!(t, "[[sources]]");
        let _ = writeln!(t, "id = {}", escape_toml(id));
        let _ = writeln!(t, "kind = \"soap\"");
        let _ = writeln!(
            t,
            "mapping = {}          # gateway mappings suggest 可提议映射 / propose one with gateway mappings suggest",
            escape_toml(&format!("mappings/{id}/mapping.toml"))
        );
        let _ = writeln!(t, "poll_seconds = 900");
        let _ = writeln!(t);
        let _ = writeln!(t, "[sources.soap]");
        let endpoint = self.endpoint.clone().unwrap_or_else(|| "http://FILL-IN/".to_string());
        if self.endpoint.is_none() {
            let _ = writeln!(
                t,
                "# WSDL 中没有 soap:address，请填写 / the WSDL gives no soap:address: fill in"
            );
        }
        let _ = writeln!(t, "url = {}", escape_toml(&endpoint));
        let _ = writeln!(t, "soap_version = \"{}\"", self.soap_version);
        if let Some(a) = &self.action {
            let _ = writeln!(t, "action = {}", escape_toml(a));
        }
        match template_file {
            Some(f) => {
                let _ = writeln!(
                    t,
                    "envelope_template_file = {}   # 相对于配置文件 / relative to the configuration file",
                    escape_toml(f)
                );
            }
            None => {
                let _ = writeln!(t, "envelope_template = '''\n{}'''", template);
            }
        }
        match &records {
            Some(r) => {
                let _ = writeln!(
                    t,
                    "records_path = {}   # 响应中 maxOccurs=\"unbounded\" 的元素 / the repeating element of the answer",
                    escape_toml(r)
                );
            }
            None => {
                let _ = writeln!(t, "# 响应类型中没有重复元素，请填写记录元素的路径 / no repeating element in the answer's type: fill in the record path");
                let fallback = self.output.as_ref().map_or_else(
                    || format!("Envelope.Body.{}Response", self.name),
                    |o| format!("Envelope.Body.{}", o.name),
                );
                let _ = writeln!(t, "records_path = {}", escape_toml(&fallback));
            }
        }
        if let Some(p) = total {
            let _ = writeln!(t, "total_path = {}", escape_toml(&p));
        }
        if let Some(p) = &status {
            let _ = writeln!(
                t,
                "status_path = {}   # 核对成功代码 / check the success codes",
                escape_toml(p)
            );
            if let Some(m) = &message {
                let _ = writeln!(t, "message_path = {}", escape_toml(m));
            }
        }
        if paged {
            let _ = writeln!(t, "pagination = \"page\"");
            let _ = writeln!(
                t,
                "page_size = 100                       # 不超过对方系统允许的最大值 / within the service's maximum"
            );
            let _ = writeln!(t, "first_page = 1");
        }
        if used.contains(&"since") {
            let watermark = self.output.as_ref().and_then(record_element).and_then(|r| {
                r.children
                    .iter()
                    .find(|c| c.children.is_empty() && is_watermark_name(&c.name))
                    .map(|c| c.name.clone())
            });
            let _ = writeln!(
                t,
                "# 增量拉取：记录的更新时间元素 / incremental pulls: the record's last-changed element"
            );
            match watermark {
                Some(w) => {
                    let _ = writeln!(t, "watermark_path = {}", escape_toml(&w));
                }
                None => {
                    let _ = writeln!(t, "# watermark_path = \"gxsj\"   # 请填写 / fill in");
                }
            }
            let _ = writeln!(t, "# initial_since = \"2020-01-01 00:00:00\"");
        }
        if used.contains(&"username") || used.contains(&"password") {
            let _ = writeln!(t, "username = \"FILL-IN\"");
            let _ = writeln!(
                t,
                "password_env = \"FILL_IN_PASSWORD_ENV\"   # 密码放环境变量 / the password in an environment variable"
            );
        }
        if !params.is_empty() {
            let _ = writeln!(
                t,
                "# 请求中的其他参数，请填写取值 / the request's other parameters: fill in their values"
            );
            let list: Vec<String> = params.iter().map(|p| format!("{} = \"\"", toml_key(p))).collect();
            let _ = writeln!(t, "params = {{ {} }}", list.join(", "));
        }
        SourceProposal {
            toml: t,
            template,
            records_path: records,
            params,
        }
    }
}

fn toml_key(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        k.to_string()
    } else {
        escape_toml(k)
    }
}
