"""Hand-picked expressions, each evaluated by the ``cel`` library and the fast compiler.

Every case must be supported by the fast compiler and agree with the library: the same value, compared
type-strictly, or an error from both. The cases name the rules that are easy to get wrong in Python
(``True == 1``, floor division, bool as int, string size in bytes, error absorption...).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.cel_fast import assert_agrees

ACTIVATION: dict[str, Any] = {
    "m": {"a": 1, "b": None, "l": [1, 2], "s": "x", "f": 1.5, "t": True, "nested": {"deep": {"x": "y"}}},
    "l": [1, 2, 3],
    "strs": ["a", "b", "c"],
    "maps": [{"name": "x", "image": "i1"}, {"name": "y"}, {"name": "z", "image": ""}],
    "n": None,
    "f": 1.5,
    "i": 3,
    "big": 9223372036854775807,
    "small": -9223372036854775808,
    "bt": True,
    "bf": False,
    "s": "héllo",
    "u": "日本語",
    "e": "",
    "empty": {},
    "nolist": [],
    "nan": float("nan"),
    "inf": float("inf"),
    "__v_x": {"name": "var"},
}

LITERALS = [
    "1", "-1", "0x10", "-0x10", "007", "9223372036854775807", "-9223372036854775808", "1.5", "-1.5",
    "1e3", "1e-3", "1E+3", ".5", ".5e1", "-0.0", "true", "false", "null", "'a'", '"a"', "'''a'b'''",
    '"""a"b"""', "r'\\n'", "R'\\d'", 'r"""a\\n"""', "'\\n\\t\\r\\a\\b\\f\\v'", "'\\\\'", "'\\''",
    "\"\\\"\"", "'\\`\\?'", "'\\x41\\X42'", "'\\u00e9'", "'\\U0001F600'", "'\\101'", "'\\377'",
    "'é日本'", "'''multi\nline'''", "'''a\r\nb\rc\n\rd'''", "r'''a\r\nb'''", "1e308", "1e-400",
    "[]", "[1, 'a', null]", "[1, 2,]", "[,]", "{}", "{'a': 1}",
    "{'a': 1, 'a': 2}",  "{1: 'one', 2: 'two'}", "{true: 1}", "{'a': 1,}", "{'a': {'b': [1, {'c': null}]}}",
    "1 // a comment\n + 2", "  1  ", "\t1\r\n",
]  # fmt: skip

ARITHMETIC = [
    "1 + 2", "1 - 2", "2 * 3", "7 / 2", "-7 / 2", "7 / -2", "-7 % 3", "7 % -3", "5 % 0", "5 / 0",
    "1 + 1.5", "1.5 + 1", "1.5 + 2.5", "1.5 - 0.5", "2.0 * 3.0", "7.0 / 2.0", "1.0 / 0.0", "-1.0 / 0.0",
    "1.0 / -0.0", "0.0 / 0.0", "5.0 % 2.0", "big + 1", "small - 1", "big * 2", "small / -1",
    "small % -1", "-small", "-(small + 1)", "--5", "- -5", "-i", "-f", "-bt", "-bf", "-n", "-'a'",
    "-[1]", "'a' + 'b'", "s + u", "'a' + 1", "[1] + [2]", "[1] + ['a']", "l + strs", "[1] + 1",
    "{'a': 1} + {'b': 2}", "true + true", "null + null", "'ab' * 2", "1e308 * 10.0", "i * f",
    "1 + 2 * 3", "(1 + 2) * 3", "10 - 2 - 3", "100 / 10 / 5", "2 * 3 % 4", "-2 * -3", "!true",
    "!!true", "!1", "!n", "-m.a", "-l.size()", "-1.size()",
]  # fmt: skip

COMPARISONS = [
    "1 == 1", "1 == 1.0", "1.0 == 1", "1 == 2", "true == 1", "1 == true", "false == 0", "null == null",
    "null == 0", "null == false", "n == null", "'a' == 'a'", "'1' == 1", "[1] == [1.0]",
    "[true] == [1]", "[1, 'a'] == [1.0, 'a']", "{'a': 1} == {'a': 1.0}", "{'a': 1} == {'b': 1}",
    "{1: 2} == {1: 2.0}", "{1: 'a'} == {true: 'a'}", "[] == []", "{} == {}", "[1] == 1", "{} == []",
    "[1, 2] == [1, 2, 3]", "[1, [2]] == [1, [2.0]]", "m == m", "l != [1, 2, 3]", "1 != 1.0",
    "'a' != 'b'", "nan == nan", "nan != nan", "-0.0 == 0.0", "9007199254740993 == 9007199254740992.0",
    "9223372036854775807 == 9223372036854775808.0", "1 < 2", "2 <= 2", "3 > 2", "2 >= 3", "1 < 1.5",
    "1.5 > 1", "i >= 3", "i <= 2.999", "9007199254740993 < 9007199254740994.0",
    "9007199254740993 > 9007199254740992.0", "'a' < 'b'", "'é' < 'z'", "'\\U0001F600' > '\\uFFFF'",
    "true < false", "false < true", "true <= true", "null < 1", "[1] < [2]", "1 < 'a'", "true < 1",
    "nan < 1.0", "1 < nan", "nan <= nan", "inf > 1", "1 < 2 == true", "1 == 1 == true", "1 < 2 < 3",
    "1 in [1, 2]", "1.0 in [1, 2]", "1 in [1.0]", "true in [1]", "1 in [true]", "'a' in [1, 'a']",
    "null in [null]", "[1] in [[1.0]]", "'a' in {'a': 1}", "'z' in m", "1.0 in {1: 'a'}",
    "true in {1: 'a'}", "1 in {true: 'a'}", "null in {'a': 1}", "[1] in {'a': 1}", "'a' in 'abc'",
    "'a' in null", "'x' in strs", "'a' in strs", "{'x': 1} in maps", "1 in l == true",
]  # fmt: skip

LOGIC = [
    "true && true", "true && false", "false && true", "true || false", "false || false",
    "false && (1 / 0 == 1)", "(1 / 0 == 1) && false", "true && (1 / 0 == 1)", "(1 / 0 == 1) && true",
    "(1 / 0 == 1) || true", "true || (1 / 0 == 1)", "false || (1 / 0 == 1)", "(1 / 0 == 1) || false",
    "(1 / 0 == 1) || (2 / 0 == 1)", "(1 / 0 == 1) && (2 / 0 == 1)", "1 && true", "1 && false",
    "true && 1", "false && 1", "1 || true", "1 || false", "true || 1", "false || 1", "m.z && false",
    "false && m.z", "m.z || true", "n.a || true", "true && true || false && false",
    "false || true && false", "!false && true", "!(false || true)", "true ? 1 : 2", "false ? 1 : 2",
    "1 ? 2 : 3", "n ? 1 : 2", "true ? 2 : 1 / 0", "false ? 1 / 0 : 2", "true ? 1 : false ? 2 : 3",
    "false ? 1 : true ? 2 : 3", "1 < 2 ? 'yes' : 'no'", "true || false ? 'a' : 'b'",
    "true ? [1] : {}", "(1 / 0 == 1) ? 1 : 2", "m.z ? 1 : 2",
]  # fmt: skip

MEMBERS = [
    "m.a", "m.b", "m.z", "m.nested.deep.x", "m.nested.deep.y", "m.a.b", "m.l.a", "m.s.x", "n.a",
    "l.a", "i.a", "'abc'.a", "{'a': {'b': 1}}.a.b", "(m).a", "m['a']", "m['z']", "m[1]", "m[1.0]",
    "m[null]", "m[true]", "l[0]", "l[2]", "l[3]", "l[-1]", "l[1.0]", "l[true]", "l['a']",
    "'abc'[0]", "[1, 2][0][0]", "{1: 'a'}[1]", "{1: 'a'}[true]", "{true: 'a'}[1]", "{true: 'a'}[true]",
    "{1.5: 'a'}", "{null: 'a'}", "{[1]: 'a'}", "{'a': 1 / 0}", "{1 / 0: 'a'}", "[1, 1 / 0]",
    "has(m.a)", "has(m.b)", "has(m.z)", "has(m.nested.deep)", "has(m.nested.deep.x)",
    "has(m.nested.nope.x)", "has(n.a)", "has(l.a)", "has(i.a)", "has(s.x)", "has(bt.x)", "has(f.x)",
    "has(m.l.x)", "has(m.a.b)", "has({'a': 1}.a)", "has(empty.a)", "__v_x.name", "has(__v_x.name)",
    "undefined", "undefined.field", "has(undefined.field)", "maps[0].name", "maps[1].image",
    "m.nested['deep'].x", "[m][0].a", "m.l[1]", "{'k': l}.k[2]",
]  # fmt: skip

FUNCTIONS = [
    "size('abc')", "size(s)", "size(u)", "s.size()", "size('')", "size(l)", "l.size()", "size(m)",
    "m.size()", "{}.size()", "size(1)", "size(null)", "size(n)", "size(bt)",
    "'abc'.startsWith('ab')", "'abc'.startsWith('b')", "'abc'.endsWith('bc')", "s.startsWith('hé')",
    "'abc'.startsWith(1)", "l.startsWith('a')", "'abc'.contains('b')", "'abc'.contains('')",
    "'abc'.contains(1)", "contains('abc', 'b')", "[1, 2].contains(1)", "[1, 2].contains(true)",
    "[1.0].contains(1)", "m.contains('a')", "contains(l, 3)", "n.contains('a')",
    "int('12')", "int('+12')", "int('-12')", "int(' 12')", "int('1_0')", "int('٣')", "int('1.5')",
    "int('')", "int('0x10')", "int('9223372036854775807')", "int('9223372036854775808')",
    "int('-9223372036854775808')", "int(1.9)", "int(-1.9)", "int(f)", "int(i)", "int(true)",
    "int(null)", "int(1e30)", "int(nan)", "int(inf)", "int(9223372036854774784.0)",
    "int(-9223372036854774784.0)", "int(-9223372036854775808.0)", "int(9223372036854775808.0)",
    "double(1)", "double(i)", "double(1.5)", "double('1.5')", "double('1e5')", "double('1E+5')",
    "double('.5')", "double('1.')", "double('inf')", "double('-Infinity')", "double('NaN')",
    "double('abc')", "double(' 1')", "double('1_0')", "double('e5')", "double('+1')", "double('0x10')",
    "double(true)", "double(null)", "string(1)", "string(-1)", "string(1.5)", "string(1.0)",
    "string(-0.0)", "string(1e30)", "string(1e21)", "string(1e-7)", "string(0.1)", "string(5e-324)",
    "string(1e300)", "string(123456789.123)", "string(1.0 / 0.0)", "string(-1.0 / 0.0)",
    "string(0.0 / 0.0)", "string('a')", "string(true)", "string(null)", "string([1])", "string(big)",
    "dyn(1)", "dyn(1) + 1", "dyn(1) + 1.5", "dyn([1, 2])", "bool('true')", "bool('T')", "bool(true)",
    "bool(1)", "lists.range(3)", "lists.range(0)", "math.greatest(1, 2)", "math.greatest([1, 2.5])",
    "math.least(3, 1, 2)", "max([1, 2])", "max(1, 2.5)", "min([3, 1])", "max([])", "strings.quote('a\"b')",
    "'a,b'.split(',')", "'abc'.charAt(1)", "'abc'.charAt(5)", "[1, 2, 3].sum()", "sum([1, 2])",
    "sum([true])", "[3, 1, 2].sort()", "[[1], [2]].flatten()", "[1, 1].distinct()", "[1, 2].reverse()",
    "'abc'.reverse()", "'Abc'.lowerAscii()", "'abc'.upperAscii()", "' a '.trim()", "'abc'.indexOf('b')",
    "'abcb'.lastIndexOf('b')", "'abc'.substring(1)", "'abc'.substring(2, 1)", "'aaa'.replace('a', 'b', 2)",
    "strs.join(',')", "strs.join()", "join(strs, '-')", "l.join(',')", "math.abs(-1)", "math.bitOr(1, 2)",
    "sets.contains([1, 2], [1])", "base64.encode('abc')", "lookup(m, 'nested.deep.x', 'd')",
    "lookup(m, 'nested.none', 'd')", "lookup(m, 'b', 'd')", "lookup(n, 'a', [])", "lookup(m, 1, 2)",
    "lookup(m)", "merge(m, {'a': 2})", "merge(1)", "merge(null, {'x': 1})", "nonEmpty([])",
    "nonEmpty('')", "nonEmpty('x')", "withoutNames(maps, ['x'])", "prefixKeys({'a': 'b'}, 'p/')",
    "withFragment('http://x#y', 'z')", "pathJoin('/a', 'b')", "pathDir('/a/b')", "isAbsPath('a')",
    "kvMap(['a=1', 'b'])", "mapOf([['k', 1]])", "mapOf([['k']])", "toJson({'b': [1, 2.5, null]})",
    "shellQuote('a b')", "validLabels({'a': 'b', 'c': '*'})", "invalidLabels({'a': 'b', 'c': '*'})",
    "interpose('buildkite', ['echo'], ['hi'])", "'a'.matches('a')", "s.matches('^h.llo$')",
    "'ab\\n'.matches('b$')", "'a\\nb'.matches('^a$')", "'aB'.matches('(?i)ab')", "n.matches('a')",
    "'a1'.matches('^[a-z][0-9]$')", "'x y'.matches('x\\\\sy')",
]  # fmt: skip

COMPREHENSIONS = [
    "l.map(x, x * 2)", "l.map(x, x > 1, x * 2)", "l.filter(x, x > 1)", "l.all(x, x > 0)",
    "l.exists(x, x > 2)", "l.exists_one(x, x > 2)", "l.exists_one(x, x > 1)", "[].all(x, x)",
    "[].exists(x, 1 / 0 == 1)", "[1, 0].all(x, 1 / x > 0)", "[0, 1].exists(x, 1 / x > 0)",
    "[1, 0].exists(x, 1 / x > 0)", "[0, 1].all(x, 1 / x > 2)", "[0, 'a'].all(x, x > 0)",
    "['a', 0].all(x, x > 0)", "[1, 'a'].exists(x, x > 0)", "['a', 1].exists(x, x > 0)",
    "[1, 1, 'a'].exists_one(x, x == 1)", "[1, 1, 'a'].exists_one(x, x > 0)", "[1, 'a'].filter(x, x > 0)",
    "[1, 'a'].map(x, x > 0, x)", "[1, 2].all(x, x)", "[false, 1].all(x, x)", "[1, false].all(x, x)",
    "[true, 1].exists(x, x)", "[1].filter(x, x)", "[1].map(x, x, x)", "1.all(x, x)", "null.map(x, x)",
    "'abc'.all(x, true)", "n.exists(x, true)", "{'a': 1}.all(k, k == 'a')",
    "{'a': 1}.exists_one(k, k == 'a')", "{'a': 1}.map(k, k + '!')", "{'a': 1}.filter(k, k == 'a')",
    "m.exists(k, k == 'nested')", "m.all(k, size(k) > 0)", "[1, 2].map(x, [1, 2].map(x, x * 10))",
    "[1, 2].map(x, [3].map(y, x + y))", "l.map(l, l * 2)", "[[1], [2]].map(x, x.map(x, x + 1))",
    "l.filter(x, x > 1).map(x, x * 2)", "{'a': 1}.map(k, v, v)", "maps.map(c, lookup(c, 'image', ''))",
    "maps.filter(c, has(c.image)).map(c, c.image)", "maps.map(c, c.image)", "maps.exists(c, c.name == 'y')",
    "strs.map(s, s + s)", "strs.filter(x, x != 'b').join(',')", "l.map(x, x).size()", "l.map(x, x)[0]",
    "lists.range(3).map(i, l[i])", "lists.range(4).map(i, l[i])", "l.map(x, i + x)", "l.all(x, x in l)",
    "[[1, 2], [3]].map(p, p.map(q, p.size() + q))", "maps.map(m, m.name)",
    "[{'a': 1}, {'b': 2}].map(x, has(x.a))", "l.exists(x, x == 2) && l.all(x, x < 4)",
]  # fmt: skip

ALL_CASES = LITERALS + ARITHMETIC + COMPARISONS + LOGIC + MEMBERS + FUNCTIONS + COMPREHENSIONS


@pytest.mark.parametrize("source", ALL_CASES)
def test_fast_evaluation_matches_the_cel_library(source: str) -> None:
    unordered = "{'a': 1}.map" in source or "m.map" in source
    assert_agrees(source, ACTIVATION, unordered=unordered)
