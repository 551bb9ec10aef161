"""duban's Temporal data converter: the SDK's default, with dataclasses decoded from JSON using
each dataclass's field types resolved once.

The SDK's JSON converter (``temporalio.converter.value_to_type``, temporalio 1.x) calls
``typing.get_type_hints`` for every dataclass instance it decodes; with postponed annotations that
evaluates every field's annotation string again — about 90 µs per ``EventEnvelope``, and a step's
activity input and result carry every event of the step (issue 14: payload decoding was a quarter
of the simulation's CPU, profiled with py-spy). ``DataclassDecoder`` builds the same objects the
SDK builds (same fields converted, the same ``TypeError`` when one does not convert, unknown keys
ignored, ``init=False`` fields restored), so a worker using this converter and one using the
default decide identically. ``DataclassEncoder`` writes the text the SDK's encoder writes (the
same bytes) without deep-copying each dataclass first.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any

from temporalio.converter import (
    AdvancedJSONEncoder,
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    JSONTypeConverter,
    value_to_type,
)


@functools.cache
def _plain_dataclass(tp: type) -> bool:
    """Whether ``tp`` is a dataclass deriving only from dataclasses (a dataclass that is also a
    mapping, a sequence or an enum takes another branch of the SDK's conversion: left to it)."""
    return dataclasses.is_dataclass(tp) and all(
        dataclasses.is_dataclass(k) or k is object for k in tp.__mro__
    )


@functools.cache
def _fields(tp: type) -> tuple[tuple[str, Any, bool], ...]:
    """``(name, resolved type, init)`` of each field of dataclass ``tp``, in declaration order."""
    hints = typing.get_type_hints(tp)
    return tuple((f.name, hints[f.name], f.init) for f in dataclasses.fields(tp))


@functools.cache
def _names(tp: type) -> tuple[str, ...]:
    """The field names of dataclass ``tp``, in declaration order (what ``dataclasses.asdict`` writes)."""
    return tuple(f.name for f in dataclasses.fields(tp))


class DataclassDecoder(JSONTypeConverter):
    """Decodes a JSON object into a dataclass as ``temporalio.converter.value_to_type`` does, with
    the field types resolved once per dataclass (so an annotation's name rebound after the first
    decode is not seen: duban never does that). Anything else, and a dataclass deriving from a
    class that is not one, is left to the SDK (``Unhandled``).
    """

    def to_typed_value(self, hint: type, value: Any) -> Any:
        if not (isinstance(hint, type) and isinstance(value, dict) and _plain_dataclass(hint)):
            return JSONTypeConverter.Unhandled
        init_values: dict[str, Any] = {}
        other_values: dict[str, Any] = {}
        for name, field_hint, init in _fields(hint):
            if name not in value:
                continue  # a missing required field fails at instantiation, as in the SDK
            try:
                converted = value_to_type(field_hint, value[name], [self])
            except Exception as err:
                raise TypeError(f"Failed converting field {name} on dataclass {hint}") from err
            (init_values if init else other_values)[name] = converted
        obj = hint(**init_values)
        for name, field_value in other_values.items():
            object.__setattr__(obj, name, field_value)
        return obj


class DataclassEncoder(AdvancedJSONEncoder):
    """The SDK's JSON encoder, with a dataclass object given to ``json`` as a shallow dict of its
    fields (the encoder then meets its values, and nested dataclasses, one by one) instead of
    ``dataclasses.asdict``'s deep copy: the same JSON text, without copying every value first."""

    def default(self, o: Any) -> Any:
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return {name: getattr(o, name) for name in _names(type(o))}
        return super().default(o)


class DubanPayloadConverter(CompositePayloadConverter):
    """The SDK's default payload converters, the JSON one with ``DataclassDecoder`` and
    ``DataclassEncoder``."""

    def __init__(self) -> None:
        super().__init__(
            *(
                JSONPlainPayloadConverter(
                    encoder=DataclassEncoder, custom_type_converters=[DataclassDecoder()]
                )
                if isinstance(converter, JSONPlainPayloadConverter)
                else converter
                for converter in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


DATA_CONVERTER = dataclasses.replace(DataConverter.default, payload_converter_class=DubanPayloadConverter)
"""The data converter of duban's clients and workers (pass as ``data_converter=``)."""
