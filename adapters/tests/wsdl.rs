//! `gateway sources from-wsdl`'s reader ([`adapters::sources::wsdl`]): a realistic WSDL with an
//! imported XSD, served over HTTP and read from a file, gives a SOAP source proposal that passes
//! the settings check as written; rpc style, SOAP 1.2, DTDs, limits.

use adapters::sources::wsdl::{self, WsdlError, WsdlLimits};
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wsdl").join(name)
}

async fn serve_wsdl() -> SocketAddr {
    let wsdl = std::fs::read_to_string(fixture("case-service.wsdl")).unwrap();
    let xsd = std::fs::read_to_string(fixture("xsd/case-types.xsd")).unwrap();
    let app = Router::new()
        .route("/hbzf/services/CaseQueryService", get(move || async move { wsdl }))
        .route("/hbzf/services/xsd/case-types.xsd", get(move || async move { xsd }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gw-wsdl-{name}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("soap")).unwrap();
    dir
}

/// The `[sources.soap]` table of a proposed block, after checking the block's outer keys.
fn soap_table(block: &str) -> toml::Table {
    let config: toml::Table = block.parse().unwrap_or_else(|e| panic!("{e}\n{block}"));
    let source = config["sources"].as_array().unwrap()[0].as_table().unwrap();
    assert_eq!(source["kind"].as_str(), Some("soap"));
    source["soap"].as_table().unwrap().clone()
}

#[tokio::test]
async fn a_wsdl_served_over_http_with_an_imported_xsd_gives_a_source_that_passes_the_settings_check() {
    let addr = serve_wsdl().await;
    let url = format!("http://{addr}/hbzf/services/CaseQueryService?wsdl");
    let service = wsdl::load(&url, &WsdlLimits::default()).await.unwrap();
    assert_eq!(service.names(), ["queryCases", "getCaseDetail"]);
    assert_eq!(
        service.operations.len(),
        4,
        "two operations on a SOAP 1.1 and a SOAP 1.2 port"
    );

    let op = service.pick(None).unwrap();
    assert_eq!(op.name, "queryCases");
    assert_eq!(op.soap_version, "1.1");
    assert_eq!(op.action.as_deref(), Some("urn:queryCases"));
    assert_eq!(
        op.endpoint.as_deref(),
        Some("http://10.36.1.20:8080/hbzf/services/CaseQueryService")
    );

    let dir = temp_dir("http");
    let proposal = op.propose("jiangxi-ecology", Some("soap/queryCases.xml"));
    std::fs::write(dir.join("soap/queryCases.xml"), &proposal.template).unwrap();
    assert_eq!(
        proposal.records_path.as_deref(),
        Some("Envelope.Body.queryCasesResponse.return.case"),
        "the maxOccurs=unbounded element of the imported type"
    );
    for part in [
        "<tns:queryCases>",
        "<startTime>{{since}}</startTime>",
        "<endTime>{{until}}</endTime>",
        "<areaCode>{{areaCode}}</areaCode>",
        "<pageNo>{{page}}</pageNo>",
        "<pageSize>{{page_size}}</pageSize>",
        "xmlns:tns=\"http://ws.zfxt.sthjt.jiangxi.gov.cn/\"",
        "xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"",
    ] {
        assert!(
            proposal.template.contains(part),
            "{part} missing in\n{}",
            proposal.template
        );
    }
    assert_eq!(proposal.params, ["areaCode"]);
    let table = soap_table(&proposal.toml);
    assert_eq!(table["url"].as_str(), op.endpoint.as_deref());
    assert_eq!(table["action"].as_str(), Some("urn:queryCases"));
    assert_eq!(table["pagination"].as_str(), Some("page"));
    assert_eq!(
        table["watermark_path"].as_str(),
        Some("gxsj"),
        "the record's last-changed element, since the request takes a start time"
    );
    assert_eq!(
        table["total_path"].as_str(),
        Some("Envelope.Body.queryCasesResponse.return.total")
    );
    assert_eq!(
        table["status_path"].as_str(),
        Some("Envelope.Body.queryCasesResponse.return.resultCode")
    );
    assert_eq!(
        table["message_path"].as_str(),
        Some("Envelope.Body.queryCasesResponse.return.resultMsg")
    );
    let problems = adapters::sources::check_settings("soap", &table, &dir);
    assert!(problems.is_empty(), "{problems:?}\n{}", proposal.toml);
    adapters::sources::build("jiangxi-ecology", "soap", &table, &dir).unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_wsdl_file_with_a_relative_import_gives_an_inline_template_that_passes_the_check() {
    let path = fixture("case-service.wsdl");
    let service = wsdl::load(path.to_str().unwrap(), &WsdlLimits::default())
        .await
        .unwrap();
    let op = service.pick(Some("queryCases")).unwrap();
    let proposal = op.propose("jiangxi-ecology", None);
    assert_eq!(
        proposal.records_path.as_deref(),
        Some("Envelope.Body.queryCasesResponse.return.case")
    );
    let table = soap_table(&proposal.toml);
    assert!(table["envelope_template"].as_str().unwrap().contains("{{page}}"));
    let problems = adapters::sources::check_settings("soap", &table, Path::new("."));
    assert!(problems.is_empty(), "{problems:?}");
}

#[tokio::test]
async fn the_soap_12_port_is_read_with_its_own_address_and_version() {
    let service = wsdl::load(fixture("case-service.wsdl").to_str().unwrap(), &WsdlLimits::default())
        .await
        .unwrap();
    let op = service
        .operations
        .iter()
        .find(|o| o.name == "getCaseDetail" && o.soap_version == "1.2")
        .unwrap();
    assert_eq!(
        op.endpoint.as_deref(),
        Some("http://10.36.1.20:8080/hbzf/services/CaseQueryService.soap12")
    );
    let proposal = op.propose("detail", None);
    assert!(proposal.template.contains("http://www.w3.org/2003/05/soap-envelope"));
    assert!(proposal.template.contains("<ajbh>{{ajbh}}</ajbh>"));
    assert_eq!(proposal.records_path, None, "a single record: no repeating element");
    let table = soap_table(&proposal.toml);
    assert_eq!(table["soap_version"].as_str(), Some("1.2"));
    assert!(adapters::sources::check_settings("soap", &table, Path::new(".")).is_empty());
}

const RPC_WSDL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:tns="urn:zfxt:case" targetNamespace="urn:zfxt:case">
  <types>
    <xsd:schema targetNamespace="urn:zfxt:case">
      <xsd:complexType name="CaseArray">
        <xsd:sequence><xsd:element name="item" type="tns:Case" maxOccurs="unbounded"/></xsd:sequence>
      </xsd:complexType>
      <xsd:complexType name="Case">
        <xsd:sequence><xsd:element name="ajbh" type="xsd:string"/></xsd:sequence>
      </xsd:complexType>
    </xsd:schema>
  </types>
  <message name="cxajRequest">
    <part name="kssj" type="xsd:string"/>
    <part name="jssj" type="xsd:string"/>
    <part name="yhm" type="xsd:string"/>
    <part name="mm" type="xsd:string"/>
  </message>
  <message name="cxajResponse"><part name="ajlb" type="tns:CaseArray"/></message>
  <portType name="CasePort">
    <operation name="cxaj"><input message="tns:cxajRequest"/><output message="tns:cxajResponse"/></operation>
  </portType>
  <binding name="CaseBinding" type="tns:CasePort">
    <soap:binding style="rpc" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="cxaj">
      <soap:operation soapAction=""/>
      <input><soap:body use="encoded" namespace="urn:zfxt:case:rpc"/></input>
      <output><soap:body use="encoded" namespace="urn:zfxt:case:rpc"/></output>
    </operation>
  </binding>
  <service name="CaseService">
    <port name="CasePort" binding="tns:CaseBinding"><soap:address location="https://zfxt.example.gov.cn/ws/case"/></port>
  </service>
</definitions>"#;

#[test]
fn an_rpc_operation_wraps_its_parts_in_the_operation_element() {
    let service = wsdl::parse(RPC_WSDL).unwrap();
    let op = service.pick(None).unwrap();
    assert_eq!(op.style, "rpc");
    assert_eq!(op.action, None, "an empty soapAction is no action");
    let proposal = op.propose("cxaj", None);
    for part in [
        "<tns:cxaj>",
        "xmlns:tns=\"urn:zfxt:case:rpc\"",
        "<kssj>{{since}}</kssj>",
        "<jssj>{{until}}</jssj>",
        "<yhm>{{username}}</yhm>",
        "<mm>{{password}}</mm>",
    ] {
        assert!(
            proposal.template.contains(part),
            "{part} missing in\n{}",
            proposal.template
        );
    }
    assert_eq!(
        proposal.records_path.as_deref(),
        Some("Envelope.Body.cxajResponse.ajlb.item")
    );
    let table = soap_table(&proposal.toml);
    assert_eq!(table["password_env"].as_str(), Some("FILL_IN_PASSWORD_ENV"));
    std::env::set_var("FILL_IN_PASSWORD_ENV", "secret");
    let problems = adapters::sources::check_settings("soap", &table, Path::new("."));
    assert!(problems.is_empty(), "{problems:?}\n{}", proposal.toml);
}

#[test]
fn a_wsdl_with_a_doctype_is_refused_before_any_entity_is_read() {
    let text = RPC_WSDL.replacen(
        "<definitions",
        "<!DOCTYPE definitions [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n<definitions",
        1,
    );
    let err = wsdl::parse(&text).unwrap_err();
    assert!(matches!(err, WsdlError::Xml { .. }), "{err}");
    assert!(err.to_string().contains("DOCTYPE"), "{err}");
}

#[test]
fn an_unknown_operation_names_the_available_ones() {
    let service = wsdl::parse(RPC_WSDL).unwrap();
    let err = service.pick(Some("queryCases")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("cxaj") && text.contains("queryCases"), "{text}");
}

#[tokio::test]
async fn imports_beyond_the_depth_limit_and_oversized_documents_are_refused() {
    let path = fixture("case-service.wsdl");
    let shallow = WsdlLimits {
        max_depth: 0,
        ..WsdlLimits::default()
    };
    let err = wsdl::load(path.to_str().unwrap(), &shallow).await.unwrap_err();
    assert!(matches!(err, WsdlError::TooManyImports(_)), "{err}");
    let small = WsdlLimits {
        max_bytes: 100,
        ..WsdlLimits::default()
    };
    let err = wsdl::load(path.to_str().unwrap(), &small).await.unwrap_err();
    assert!(matches!(err, WsdlError::TooLarge { .. }), "{err}");
    let addr = serve_wsdl().await;
    let err = wsdl::load(&format!("http://{addr}/hbzf/services/CaseQueryService"), &small)
        .await
        .unwrap_err();
    assert!(matches!(err, WsdlError::TooLarge { .. }), "{err}");
}

#[test]
fn a_document_that_is_not_a_wsdl_is_named_as_such() {
    let err = wsdl::parse("<html><body>login</body></html>").unwrap_err();
    assert!(matches!(err, WsdlError::NotWsdl(_)), "{err}");
}

#[test]
fn the_block_shown_in_the_from_wsdl_doc_passes_the_settings_check() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/from-wsdl.md")).unwrap();
    let block = |lang: &str| -> String {
        let fence = format!("```{lang}\n");
        let start = doc.find(&fence).unwrap() + fence.len();
        doc[start..].split("```").next().unwrap().to_string()
    };
    let dir = temp_dir("doc");
    std::fs::write(dir.join("soap/queryCases.xml"), block("xml")).unwrap();
    let table = soap_table(&block("toml"));
    let problems = adapters::sources::check_settings("soap", &table, &dir);
    assert!(problems.is_empty(), "{problems:?}");
    adapters::sources::build("jiangxi-ecology", "soap", &table, &dir).unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_service_whose_bindings_come_with_wsdl_import_is_read_through_the_import() {
    let path = fixture("split-service.wsdl");
    let service = wsdl::load(path.to_str().unwrap(), &WsdlLimits::default())
        .await
        .unwrap();
    let op = service
        .operations
        .iter()
        .find(|o| o.port == "GatewayPort" && o.name == "queryCases")
        .expect("the operation of the importing document's port");
    assert_eq!(
        op.endpoint.as_deref(),
        Some("https://zfxt.example.gov.cn/gateway/CaseQueryService")
    );
    let proposal = op.propose("gateway-port", None);
    assert_eq!(
        proposal.records_path.as_deref(),
        Some("Envelope.Body.queryCasesResponse.return.case"),
        "types from the imported WSDL and the XSD it imports"
    );
    let table = soap_table(&proposal.toml);
    assert!(adapters::sources::check_settings("soap", &table, Path::new(".")).is_empty());
}

#[tokio::test]
async fn a_gbk_encoded_wsdl_is_decoded_by_its_prolog() {
    let path = fixture("case-service-gbk.wsdl");
    let bytes = std::fs::read(&path).unwrap();
    assert!(std::str::from_utf8(&bytes).is_err(), "the fixture is GBK, not UTF-8");
    let service = wsdl::load(path.to_str().unwrap(), &WsdlLimits::default())
        .await
        .unwrap();
    let op = service.pick(Some("queryCases")).unwrap();
    assert_eq!(op.port, "案件查询端口", "a Chinese attribute read from GBK");
    assert_eq!(
        op.propose("gbk", None).records_path.as_deref(),
        Some("Envelope.Body.queryCasesResponse.return.case")
    );
}
