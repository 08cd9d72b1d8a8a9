"""tasks.sandbox_channel: the plain data that crosses between the sandbox's two processes.

The codec on values and on hostile bytes; then ``Program`` and ``serve`` talking over real pipes,
``serve`` in a thread of this process (the sandbox puts it in another process; the protocol is
the same), so call semantics are checked without starting a sandbox.
"""

import math
import os
import threading
from collections import Counter, OrderedDict, namedtuple

import numpy as np
import pytest

from tasks.sandbox_channel import (
    MAX_DEPTH,
    MAX_MESSAGE,
    BadMessage,
    Channel,
    ChannelClosed,
    Program,
    decode,
    encode,
    serve,
)

PLAIN = [
    None, True, False, 0, -1, 2**200, -(3**500), 0.0, -0.0, 1.5, 1e308, float("inf"), -float("inf"),
    1 + 2j, complex(0, -0.0), "", "héllo \n\x00 \ud800", b"", b"\x00\xff", [], (), {}, set(), frozenset(),
    [1, [2, (3, {"a": {4, 5}})]], {1: "a", "b": None, (1, 2): [3], frozenset({1}): b"x", 2.5: True},
    (True, 1, 1.0), [[[]]],
]


@pytest.mark.parametrize("value", PLAIN, ids=range(len(PLAIN)))
def test_plain_values_cross_unchanged(value):
    back = decode(encode(value))
    assert back == value and _types(back) == _types(value)


def _types(value):
    """The exact type of every part of ``value``, nested as it is."""
    if type(value) in (list, tuple):
        return type(value), [_types(item) for item in value]
    if type(value) is dict:
        return dict, sorted((repr(k), _types(k), _types(v)) for k, v in value.items())
    return type(value)


def test_nan_crosses():
    assert math.isnan(decode(encode(float("nan"))))


class LyingInt(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class LyingStr(str):
    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


class LyingList(list):
    def __eq__(self, other):
        return True


Point = namedtuple("Point", "x y")


@pytest.mark.parametrize("value, plain", [
    (LyingInt(3), 3), (LyingStr("x"), "x"), (LyingList([1, 2]), [1, 2]), (Point(1, 2), (1, 2)),
    (OrderedDict(a=1), {"a": 1}), (Counter("aab"), {"a": 2, "b": 1}), (np.int64(7), 7), (np.float32(0.5), 0.5),
    (np.bool_(True), True), ([LyingInt(1), {LyingStr("k"): Point(0, 0)}], [1, {"k": (0, 0)}]),
])
def test_subclasses_and_numpy_scalars_arrive_as_plain_values(value, plain):
    back = decode(encode(value))
    assert back == plain and _types(back) == _types(plain)
    assert not (decode(encode(LyingInt(3))) == 4)  # the lie stayed behind


@pytest.mark.parametrize("value", [object(), (x for x in []), print, np.array([1, 2]), {"a": [object()]}, type])
def test_other_objects_cannot_cross(value):
    with pytest.raises(TypeError, match="cannot cross the sandbox"):
        encode(value)


def test_nesting_is_bounded_both_ways():
    deep = []
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(ValueError, match="nested"):
        encode(deep)
    cyclic = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="nested"):
        encode(cyclic)
    with pytest.raises(BadMessage):
        decode(b"l1:" * (MAX_DEPTH + 5) + b"N")


@pytest.mark.parametrize("data", [
    b"", b"X", b"i;", b"izz;", b"i12", b"f;", b"fabc;", b"c1.0;", b"c1.0,2.0,3.0;", b"s5:abc", b"s-1:",
    b"s3:\xff\xfe\xfd", b"l2:N", b"l99999999999999:", b"d1:N", b"S1:l0:", b"d1:l0:N", b"NN", b"l1:Nx",
    b"T\n", b"b+3:abc", b"s 3:abc",
])
def test_malformed_bytes_are_bad_messages(data):
    with pytest.raises(BadMessage):
        decode(data)


def pipes():
    """Two channels joined by real pipes: (the tests' end, the program's end)."""
    to_program, to_tests = os.pipe(), os.pipe()
    return Channel(to_tests[0], to_program[1]), Channel(to_program[0], to_tests[1])


def close(*channels):
    for channel in channels:
        for fd in (channel.read_fd, channel.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def test_messages_are_framed_and_bounded():
    tests, program = pipes()
    try:
        program.send(("ok", 1, "x" * 50_000, []))
        program.send([1, 2])
        assert tests.receive() == ("ok", 1, "x" * 50_000, []) and tests.receive() == [1, 2]
        os.write(program.write_fd, b"%d\n" % (MAX_MESSAGE + 1))
        with pytest.raises(BadMessage, match="length"):
            tests.receive()
    finally:
        close(tests, program)
    tests, program = pipes()
    os.write(program.write_fd, b"12345678901234567890")
    with pytest.raises(BadMessage, match="no length"):
        tests.receive()
    close(tests, program)
    tests, program = pipes()
    close(program)  # the program's end is gone: the tests' end reads the end of the pipe
    with pytest.raises(ChannelClosed):
        tests.receive()
    close(tests)


SOURCE = """
class Odd(ValueError):
    pass

def add(a, b=0):
    return a + b

def grow(items, table, seen):
    items.append(len(items))
    table['n'] = len(table)
    seen.add('x')
    return None

def fail(kind):
    raise {'odd': Odd('odd one'), 'key': KeyError('k'), 'exit': SystemExit(3),
           'custom': type('Mine', (Exception,), {})('mine')}[kind]

def generator():
    return (x for x in [])

def lying():
    class Liar(int):
        def __eq__(self, other):
            return True
    return Liar(5)
"""


@pytest.fixture
def program():
    """A ``Program`` served by ``serve`` in a thread, over pipes."""
    tests, served = pipes()
    thread = threading.Thread(target=serve, args=(served, SOURCE, {"__name__": "program"}), daemon=True)
    thread.start()
    yield Program(tests)
    os.close(tests.write_fd)  # the server sees the channel close and returns
    thread.join(5)
    close(tests, served)


def test_calls_return_plain_values(program):
    assert program.add(2, b=3) == 5 and program.add([1], [2]) == [1, 2]
    assert program.lying() == 5 and not program.lying() == 6
    assert program.add.__name__ == "add" and program.failure is None


def test_mutated_arguments_come_back(program):
    items, table, seen = [7], {"a": 1}, set()
    assert program.grow(items, table, seen) is None
    assert items == [7, 1] and table == {"a": 1, "n": 1} and seen == {"x"}


@pytest.mark.parametrize("kind, raised, message", [
    ("odd", ValueError, "odd one"), ("key", KeyError, "'k'"), ("exit", SystemExit, "3"), ("custom", Exception, "mine"),
])
def test_exceptions_come_back_as_their_builtin_class(program, kind, raised, message):
    with pytest.raises(raised) as caught:
        program.fail(kind)
    assert type(caught.value) is raised and str(caught.value) == message
    assert program.add(1) == 1  # the program still serves


def test_what_cannot_cross_is_a_type_error_either_way(program):
    with pytest.raises(TypeError, match="cannot cross"):
        program.generator()
    with pytest.raises(TypeError, match="cannot cross"):
        program.add(lambda: 1)
    with pytest.raises(NameError, match="missing"):
        program.missing()
    assert program.add(1, 2) == 3 and program.failure is None


def test_a_wrong_answer_on_the_channel_is_remembered():
    tests, served = pipes()
    try:
        served.send(("ok", 0, None, []))  # the program ran
        served.send(("ok", 7, True, [None]))  # an answer to a call that was never made
        program = Program(tests)
        with pytest.raises(BadMessage, match="call 1"):
            program.anything(1)
        assert isinstance(program.failure, BadMessage)
    finally:
        close(tests, served)
