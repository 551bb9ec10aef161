"""The document template (``templates/default.yaml``): issuing office, number pattern, titles,
recipients and next steps per language and notice kind; and the labels the documents print.

Errors name the key path in the file (``zh-CN.titles.weekly``)."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from events.errors import ValidationError

DEFAULT_TEMPLATE_PATH = Path(__file__).with_name("templates") / "default.yaml"
LANGUAGES = ("zh-CN", "en")
KINDS = ("weekly", "half-monthly", "monthly")
NUMBER_FIELDS = ("year", "kind_code", "serial")
"""The fields a document number may name (``{year}``, ``{kind_code}``, ``{serial}``)."""
TITLE_FIELDS = ("period",)
"""The fields a title may name (``{period}``: the period in words)."""


def check_fields(pattern: str, allowed: tuple[str, ...], path: str) -> None:
    """Refuse a format ``pattern`` naming anything but plain fields of ``allowed``: no attribute or
    index access (``{kind_code.__class__}``, ``{serial[0]}``), no positional field (``{}``, ``{0}``),
    no conversion (``!r``), no field nested in a format spec; a spec such as ``{serial:02d}`` is fine.

    Raises:
        ValidationError: field ``path``, naming the offending field.
    """
    try:
        parts = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        problem = f"is not a valid pattern ({exc}); write a brace as {{{{ or }}}}"
        raise ValidationError(path, problem) from None
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in allowed:
            raise ValidationError(
                path, f"may name only {', '.join('{' + a + '}' for a in allowed)}, not {{{name}}}"
            )
        if conversion is not None or (spec and ("{" in spec or "}" in spec)):
            raise ValidationError(path, f"{{{name}}} must be a plain field (no !conversion, no nested field)")


@dataclass(frozen=True)
class Template:
    """One language's fixed text."""

    lang: str
    office: str
    issuer: str
    number: str
    kind_codes: dict[str, str]
    titles: dict[str, str]
    recipients: str
    next_steps: dict[str, list[str]]
    signature: str

    def document_number(self, kind: str, period: str) -> str:
        """The number of the ``kind`` document of ``period`` (``2022-05``, ``2022-05-H1``, ``2022-W19``)."""
        year = period[:4]
        if m := re.match(r"^\d{4}-W(\d{2})$", period):
            serial = int(m[1])
        elif m := re.match(r"^\d{4}-(\d{2})-H([12])$", period):
            serial = 2 * int(m[1]) - 2 + int(m[2])
        else:
            serial = int(period[5:7])
        return self.number.format(year=year, kind_code=self.kind_codes.get(kind, ""), serial=serial)


def _text(data: Any, key: str, path: str) -> str:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{path}.{key}", "must be a non-empty text")
    return value


def _per_kind(data: Any, key: str, path: str, lists: bool = False) -> dict[str, Any]:
    block = data.get(key) if isinstance(data, dict) else None
    if not isinstance(block, dict):
        raise ValidationError(f"{path}.{key}", f"must map each of {', '.join(KINDS)} to its text")
    out: dict[str, Any] = {}
    for kind in KINDS:
        value = block.get(kind)
        if lists:
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValidationError(f"{path}.{key}.{kind}", "must be a text or a list of texts")
        elif not isinstance(value, str):
            raise ValidationError(f"{path}.{key}.{kind}", "must be a text")
        out[kind] = value
    return out


def load_template(path: Path = DEFAULT_TEMPLATE_PATH, lang: str = "zh-CN") -> Template:
    """The ``lang`` part of the template file at ``path``.

    Raises:
        ValidationError: the file cannot be read or is not YAML (field ``template``), a language it
            lacks (``lang``), a missing or malformed key (its path), a number pattern or a title
            naming anything but its plain fields (``check_fields``: the field named).
    """
    if lang not in LANGUAGES:
        raise ValidationError("lang", f"must be one of {', '.join(LANGUAGES)}, not {lang!r}")
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValidationError(
            "template", f"{path}: cannot be read as YAML ({str(exc).splitlines()[0]})"
        ) from None
    part = data.get(lang) if isinstance(data, dict) else None
    if not isinstance(part, dict):
        raise ValidationError(lang, f"the template {path} has no part for this language")
    check_fields(_text(part, "number", lang), NUMBER_FIELDS, f"{lang}.number")
    for kind, title in _per_kind(part, "titles", lang).items():
        check_fields(title, TITLE_FIELDS, f"{lang}.titles.{kind}")
    template = Template(
        lang=lang,
        office=_text(part, "office", lang),
        issuer=_text(part, "issuer", lang),
        number=_text(part, "number", lang),
        kind_codes={k: str(v) for k, v in _per_kind(part, "kind_codes", lang).items()},
        titles=_per_kind(part, "titles", lang),
        recipients=_text(part, "recipients", lang),
        next_steps=_per_kind(part, "next_steps", lang, lists=True),
        signature=_text(part, "signature", lang),
    )
    try:
        template.document_number("monthly", "2026-01")
        for title in template.titles.values():
            title.format(period="")
    except (KeyError, IndexError, ValueError, AttributeError) as exc:  # e.g. a format spec {serial:x>}
        raise ValidationError(f"{lang}.number or titles", f"cannot be formatted ({exc})") from None
    return template


LABELS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "provisional": "未封账（临时数据，以封账后为准）",
        "summary": "总体情况",
        "summary_text": (
            "{period}，全区共受理问题{received}件，已整改{rectified}件，整改率{rectification_rate}；"
            "按期结案率{on_time_rate}（按期结案{closed_on_time}件/有期限结案{closed_with_deadline}件），"
            "超期结案{closed_late}件，截至统计时点超期未办结{overdue_open}件。"
        ),
        "movement_text": "与上期相比，整改率{rect_move}，按期结案率{on_time_move}。",
        "up": "上升{points}个百分点",
        "down": "下降{points}个百分点",
        "flat": "持平",
        "no_previous": "上期无可比数据",
        "ranking": "{level}排名",
        "department": "部门",
        "town": "镇（街道）",
        "community": "村（社区）",
        "district": "挂包片区",
        "rank": "名次",
        "move": "变动",
        "unit": "单位",
        "score": "得分",
        "band": "等次",
        "rectification": "整改率",
        "rectified_of": "已整改/应整改",
        "on_time": "按期结案率",
        "on_time_of": "按期/有期限结案",
        "overdue_items": "超期未办结问题（红灯）",
        "closed_late": "本期超期结案问题",
        "due_soon": "即将超期问题（72小时内到期）",
        "item": "问题编号",
        "category": "类别",
        "responsible": "责任单位",
        "area": "属地",
        "deadline": "办结时限",
        "days_overdue": "超期天数",
        "days_late": "超期天数",
        "days_left": "剩余天数",
        "repeat": "连续两期出现超期的单位",
        "breaches": "本期超期次数",
        "previous_breaches": "上期超期次数",
        "orders": "督办单办理情况",
        "order": "督办单",
        "items": "事项数",
        "closed": "已销号",
        "open": "未办结",
        "overdue": "超期",
        "interviews": "约谈名单",
        "level": "层级",
        "reasons": "约谈事由",
        "lights": "各部门红黄绿灯",
        "green": "绿灯",
        "yellow": "黄灯",
        "red": "红灯",
        "trend": "整改率周走势",
        "week": "周次",
        "next_steps": "下一步工作",
        "footer_closed": (
            "本期已封账：{frozen_at}；事件{events_count}条，"
            "事件哈希 SHA-256：{events_hash}；评分规则版本{version}"
        ),
        "footer_open": "本期未封账，数据截至{cut_off}，仅供参考",
        "none": "无",
        "more": "（另有{more}件未列出）",
        "total": "合计",
        "date_format": "%Y年%m月%d日",
        "period_weekly": "{year}年第{week}周",
        "period_half": "{year}年{month}月{half}",
        "half1": "上半月",
        "half2": "下半月",
        "period_month": "{year}年{month}月",
        "new": "新",
        "footer_seal": "；日志封存根 SHA-256：{root}",
        "department_column": "部门",
        "band_excellent": "优秀",
        "band_good": "良好",
        "band_pass": "合格",
        "band_fail": "不合格",
        "reason_last_place": "{months}在{level}排名中均居末位",
        "reason_counter_at_least": "本月{counter}{n}次（规则：达到{min}次即约谈）",
        "reason_city_order_overdue": "{count}件问题已升级为市级督办仍超期：{items}",
        "counter_breached": "超期",
        "counter_escalated": "升级督办",
        "counter_warned": "预警",
        "counter_returned": "回退",
        "counter_rework": "返工",
        "counter_extended": "延期",
        "counter_suspended": "挂账",
        "counter_cancelled": "作废",
        "counter_reported_in_late": "报到超时",
        "grid": "网格",
    },
    "en": {
        "provisional": "PROVISIONAL: the period is not closed; figures may change",
        "summary": "Summary",
        "summary_text": (
            "In {period} the district received {received} items and rectified {rectified}: a rectification "
            "rate of {rectification_rate}. The on-time closure rate was {on_time_rate} ({closed_on_time} "
            "of {closed_with_deadline} items closed with a deadline). Closed late: {closed_late}; open past "
            "their deadline at the cut-off: {overdue_open}."
        ),
        "movement_text": (
            "Against the previous period the rectification rate {rect_move} "
            "and the on-time closure rate {on_time_move}."
        ),
        "up": "rose {points} percentage points",
        "down": "fell {points} percentage points",
        "flat": "held steady",
        "no_previous": "has no previous figure",
        "ranking": "Ranking by {level}",
        "department": "department",
        "town": "town / sub-district",
        "community": "community / village",
        "district": "leader-owned district",
        "rank": "Rank",
        "move": "Move",
        "unit": "Unit",
        "score": "Score",
        "band": "Band",
        "rectification": "Rectification rate",
        "rectified_of": "Rectified / due",
        "on_time": "On-time closure rate",
        "on_time_of": "On time / closed with deadline",
        "overdue_items": "Items open past their deadline (red light)",
        "closed_late": "Items closed late in the period",
        "due_soon": "Items about to breach (due within 72 hours)",
        "item": "Item",
        "category": "Category",
        "responsible": "Responsible unit",
        "area": "Town",
        "deadline": "Deadline",
        "days_overdue": "Days overdue",
        "days_late": "Days late",
        "days_left": "Days left",
        "repeat": "Units with breaches two periods running",
        "breaches": "Breaches this period",
        "previous_breaches": "Breaches the period before",
        "orders": "Open supervision orders",
        "order": "Order",
        "items": "Items",
        "closed": "Closed out",
        "open": "Open",
        "overdue": "Overdue",
        "interviews": "Interviews",
        "level": "Level",
        "reasons": "Reasons",
        "lights": "Lights by department",
        "green": "Green",
        "yellow": "Yellow",
        "red": "Red",
        "trend": "Rectification rate by week",
        "week": "Week",
        "next_steps": "Next steps",
        "footer_closed": (
            "Closed {frozen_at}; {events_count} events, SHA-256 of their ids {events_hash}; "
            "scorebook {version}"
        ),
        "footer_open": "The period is not closed: figures as of {cut_off}, for reference only",
        "none": "None",
        "more": "({more} more not listed)",
        "total": "Total",
        "date_format": "%d %B %Y",
        "period_weekly": "week {week} of {year}",
        "period_half": "{half} of {month_name} {year}",
        "half1": "the first half",
        "half2": "the second half",
        "period_month": "{month_name} {year}",
        "new": "new",
        "footer_seal": "; log seal root SHA-256 {root}",
        "department_column": "Department",
        "sheet_department": "Ranking by department",
        "sheet_town": "Ranking by town",
        "sheet_community": "Ranking by community",
        "sheet_district": "Ranking by leader district",
        "sheet_overdue_open": "Open past deadline (red)",
        "sheet_closed_late": "Closed late",
        "sheet_due_soon": "About to breach (72 h)",
        "sheet_repeat": "Breaches two periods running",
        "sheet_orders": "Open supervision orders",
        "sheet_interviews": "Interviews",
        "sheet_lights": "Lights by department",
        "sheet_trend": "Rectification by week",
    },
}
"""What the documents print, by language (the official terms of DOMAIN.md's glossary in Chinese)."""
