//! The canonical fields a proposal may map to: what their values look like, whether the schema
//! requires them, and, for enumerated ones, the canonical codes and the code table's name.

/// What a canonical field's values look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    /// A GB 32100 credit code of an agency (机关: starts with `1`).
    AgencyCode,
    /// A credit code or an ID number.
    PartyId,
    /// A GB/T 2260 region code.
    Region,
    /// A calendar day.
    Date,
    /// A moment.
    Datetime,
    /// An amount of money.
    Amount,
    /// Yes / no.
    Boolean,
    /// One code of an enumeration (through a code table).
    Code,
    /// A list of codes (through a code table, split).
    CodeList,
    /// The name of an agency (…局, …委员会).
    AgencyName,
    /// The name of a company or a person.
    PartyName,
    /// The name of a person.
    PersonName,
    /// Several officers' names.
    OfficerList,
    /// An officer's certificate number.
    CertNo,
    /// A case or decision number, a code.
    Identifier,
    /// A law citation (《…》第…条).
    LegalText,
    /// Free text.
    Text,
}

/// One canonical field.
#[derive(Debug)]
pub(crate) struct Target {
    /// Dotted canonical path; `officers.name` is the `name` of each officer.
    pub path: &'static str,
    /// `""` common to all case types, else `penalty`, `inspection` or `coercion`.
    pub case_type: &'static str,
    pub kind: ValueKind,
    /// The schema requires it.
    pub required: bool,
    /// Canonical codes, for enumerations.
    pub codes: &'static [&'static str],
    /// Name of the proposed code table.
    pub table: &'static str,
    /// Chinese title, for comments.
    pub title: &'static str,
}

const fn t(
    path: &'static str,
    case_type: &'static str,
    kind: ValueKind,
    required: bool,
    title: &'static str,
) -> Target {
    Target {
        path,
        case_type,
        kind,
        required,
        codes: &[],
        table: "",
        title,
    }
}

const fn code(
    path: &'static str,
    case_type: &'static str,
    kind: ValueKind,
    required: bool,
    title: &'static str,
    table: &'static str,
    codes: &'static [&'static str],
) -> Target {
    Target {
        path,
        case_type,
        kind,
        required,
        codes,
        table,
        title,
    }
}

use ValueKind::*;

/// Every canonical field a proposal may map (attachments and supplements are left to people).
pub(crate) const TARGETS: &[Target] = &[
    code(
        "operation",
        "",
        Code,
        false,
        "操作类型",
        "operations",
        &["insert", "update", "delete"],
    ),
    code(
        "case_type",
        "",
        Code,
        false,
        "案件类型",
        "case_types",
        &["inspection", "penalty", "coercion"],
    ),
    t("source_updated_at", "", Datetime, false, "来源系统更新时间"),
    t("agency.name", "", AgencyName, true, "执法部门名称"),
    t("agency.credit_code", "", AgencyCode, true, "执法部门统一社会信用代码"),
    t("agency.region_code", "", Region, true, "执法部门行政区划代码"),
    t("entrusted_agency.name", "", AgencyName, false, "受委托部门名称"),
    t(
        "entrusted_agency.credit_code",
        "",
        AgencyCode,
        false,
        "受委托部门统一社会信用代码",
    ),
    t("case_number", "", Identifier, true, "部门案件编号"),
    t("case_name", "", Text, true, "案件名称"),
    t("item_code", "", Identifier, true, "监管事项目录编码"),
    t("item_name", "", Text, false, "监管事项名称"),
    t(
        "implementation_list_code",
        "inspection",
        Identifier,
        true,
        "检查实施清单编码",
    ),
    code(
        "target.kind",
        "",
        Code,
        true,
        "行政相对人类别",
        "target_kinds",
        &["legal_person", "natural_person", "individual_business", "other"],
    ),
    t("target.name", "", PartyName, true, "行政相对人名称"),
    code(
        "target.id_type",
        "",
        Code,
        true,
        "证件类型",
        "id_types",
        &[
            "uscc",
            "resident_id",
            "passport",
            "hk_macao_permit",
            "taiwan_permit",
            "foreign_permanent_resident",
            "other",
        ],
    ),
    t("target.id_number", "", PartyId, true, "行政相对人证件号码"),
    t("target.legal_representative", "", PersonName, false, "法定代表人"),
    t("target.region_code", "", Region, false, "相对人所在地行政区划代码"),
    t("target.address", "", Text, false, "相对人地址"),
    t("legal_basis", "", LegalText, true, "执法依据"),
    t("officers", "", OfficerList, true, "执法人员"),
    t("officers.name", "", PersonName, true, "执法人员姓名"),
    t("officers.cert_no", "", CertNo, true, "执法证号"),
    code(
        "case_source",
        "",
        Code,
        false,
        "案件来源",
        "case_sources",
        &["random_inspection", "complaint", "referral", "data_monitoring", "other"],
    ),
    t("closing_date", "", Date, false, "结案日期"),
    t("archive_date", "", Date, false, "归档日期"),
    t("remarks", "", Text, false, "备注"),
    t("penalty.decision_number", "penalty", Identifier, true, "处罚决定书文号"),
    t("penalty.filing_date", "penalty", Date, false, "立案日期"),
    t("penalty.decision_date", "penalty", Date, true, "处罚决定日期"),
    code(
        "penalty.procedure",
        "penalty",
        Code,
        true,
        "处罚程序",
        "procedures",
        &["simple", "ordinary"],
    ),
    t("penalty.hearing_held", "penalty", Boolean, false, "是否听证"),
    code(
        "penalty.kinds",
        "penalty",
        CodeList,
        true,
        "处罚种类",
        "penalty_kinds",
        &[
            "warning",
            "public_criticism",
            "fine",
            "confiscate_illegal_gains",
            "confiscate_illegal_property",
            "suspend_license",
            "lower_qualification",
            "revoke_license",
            "restrict_business",
            "order_suspension",
            "order_closure",
            "restrict_employment",
            "detention",
            "other",
        ],
    ),
    t("penalty.illegal_facts", "penalty", Text, true, "违法事实"),
    t("penalty.violation_type", "penalty", Text, false, "违法行为类型"),
    t("penalty.content", "penalty", Text, false, "处罚内容"),
    t("penalty.fine_amount", "penalty", Amount, false, "罚款金额"),
    t("penalty.confiscation_amount", "penalty", Amount, false, "没收金额"),
    t("penalty.license_affected", "penalty", Text, false, "暂扣或吊销证照"),
    t("penalty.valid_until", "penalty", Date, false, "处罚有效期"),
    t("penalty.publicity_until", "penalty", Date, false, "公示截止期"),
    t("penalty.publicity_date", "penalty", Date, false, "公示日期"),
    t("penalty.discretion_benchmark", "penalty", Text, false, "裁量基准"),
    t("penalty.legal_review", "penalty", Boolean, false, "是否法制审核"),
    t(
        "penalty.collective_discussion",
        "penalty",
        Boolean,
        false,
        "是否集体讨论",
    ),
    t("inspection.plan_id", "inspection", Identifier, false, "抽查计划编号"),
    t("inspection.task_id", "inspection", Identifier, false, "抽查任务编号"),
    code(
        "inspection.form",
        "inspection",
        Code,
        true,
        "检查形式",
        "inspection_forms",
        &["random", "special", "routine", "targeted", "other"],
    ),
    code(
        "inspection.method",
        "inspection",
        Code,
        false,
        "检查方式",
        "inspection_methods",
        &["on_site", "written", "online", "other"],
    ),
    code(
        "inspection.result",
        "inspection",
        Code,
        true,
        "检查结果",
        "inspection_results",
        &[
            "no_problem",
            "problem_found",
            "corrected",
            "not_operating",
            "unreachable",
            "closed",
            "uncooperative",
            "other",
        ],
    ),
    t("inspection.check_date", "inspection", Date, true, "检查日期"),
    t(
        "inspection.joint_task_id",
        "inspection",
        Identifier,
        false,
        "联合检查任务编号",
    ),
    code(
        "coercion.kind",
        "coercion",
        Code,
        true,
        "行政强制种类",
        "coercion_kinds",
        &["measure", "execution"],
    ),
    code(
        "coercion.measure_type",
        "coercion",
        Code,
        false,
        "强制措施类型",
        "measure_types",
        &["restrict_liberty", "seal_up", "seize", "freeze", "other"],
    ),
    code(
        "coercion.execution_type",
        "coercion",
        Code,
        false,
        "强制执行类型",
        "execution_types",
        &[
            "surcharge",
            "transfer_deposit",
            "auction",
            "remove_obstruction",
            "substitute_performance",
            "other",
        ],
    ),
    t("coercion.decision_number", "coercion", Identifier, true, "强制决定书号"),
    t("coercion.illegal_facts", "coercion", Text, true, "违法事实"),
    t("coercion.start_date", "coercion", Date, true, "强制措施起始日期"),
    t("coercion.end_date", "coercion", Date, false, "强制措施结束日期"),
    t("coercion.extension", "coercion", Text, false, "延长期限"),
    t("coercion.result", "coercion", Text, false, "强制结果"),
];

/// The target at `path`.
pub(crate) fn target(path: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.path == path)
}

impl Target {
    /// The schema of `case_type` requires the field (`case_source` only for penalties).
    pub fn required_for(&self, case_type: crate::CaseType) -> bool {
        self.required || (self.path == "case_source" && case_type == crate::CaseType::Penalty)
    }
}
