"""The only thing that crosses between the sandbox's two processes: plain data, in framed messages.

The test process holds the tests and the token; the program's process runs the model's code and
answers calls. Tests call ``program.name(*args, **kwargs)`` (``Program``): the name and the
arguments go over a pipe; ``serve``, in the program's process, calls the function and sends back
the result, the positional arguments as the call left them (a test may inspect a list it passed),
or the exception's class names and arguments. Only values of the plain built-in types cross:

    None  bool  int  float  complex  str  bytes  list  tuple  dict  set  frozenset

``encode`` writes a subclass of one of them as that type (the program side; an ``int`` whose
``__eq__`` lies arrives as the plain int it holds) and a numpy scalar as its Python value; any other
object is a ``TypeError``. ``decode`` (the test side) rebuilds every value from the bytes alone,
so nothing the program defines (a class, a method, a patched singleton) reaches the tests; a
malformed message is ``BadMessage``. An exception comes back as the first builtin exception class
in its class's MRO (``Exception`` if none), with its arguments; ``AssertionError`` included.

Wire format: a message is its length in decimal, a newline, then one encoded value: ``N`` ``T``
``F``; ``i<hex>;`` ``f<repr>;`` ``c<repr>,<repr>;``; ``s``/``b`` then the byte count, ``:`` and
the UTF-8 (lone surrogates kept) or raw bytes; ``l`` ``t`` ``S`` (set) ``z`` (frozenset) ``d`` then
the item count (pairs for ``d``), ``:`` and the items.

This file runs inside the sandbox too (tasks/sandbox.py compiles it followed by sandbox_boot.py
and runs both in ``python -S -P``), so it imports only what the interpreter has built in or loads
in a millisecond, and neither file has a ``from __future__`` import (one may stand only at the
top of the joined source).
"""

import builtins
import os
import select
import sys

MAX_DEPTH = 100  # nesting of containers, either way
MAX_MESSAGE = 16 << 20  # bytes; a longer reply is BadMessage
_CONSTANTS = {b"N": None, b"T": True, b"F": False}
_TAGS = {list: b"l", tuple: b"t", set: b"S", frozenset: b"z"}
_BUILD = {b"l": list, b"t": tuple, b"S": set, b"z": frozenset}
_PLAIN = (int, float, complex, str, bytes, list, tuple, dict, set, frozenset)  # bool: no subclasses


class BadMessage(Exception):
    """A message that is not plain data in the wire format, or not the answer expected."""


class ChannelClosed(Exception):
    """The other process closed its end, or ended."""


def encode(value: object) -> bytes:
    out: list = []
    _encode(value, out, 0)
    return b"".join(out)


def _encode(x: object, out: list, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"a value nested more than {MAX_DEPTH} deep cannot cross the sandbox")
    kind = type(x)
    if x is None or kind is bool:
        out.append(b"N" if x is None else b"T" if x else b"F")
    elif kind is int:
        out.append(b"i%x;" % x)  # hex: no limit on the digits (decimal ones stop at 4300)
    elif kind is float:
        out.append(b"f%r;" % x)
    elif kind is complex:
        out.append(b"c%r,%r;" % (x.real, x.imag))
    elif kind is str or kind is bytes:
        data = x.encode("utf-8", "surrogatepass") if kind is str else x
        out += [b"s%d:" % len(data) if kind is str else b"b%d:" % len(data), data]
    elif kind is dict:
        out.append(b"d%d:" % len(x))
        for key, item in x.items():
            _encode(key, out, depth + 1)
            _encode(item, out, depth + 1)
    elif kind in _TAGS:
        out.append(_TAGS[kind] + b"%d:" % len(x))
        for item in x:
            _encode(item, out, depth + 1)
    else:
        _encode(_plain(x), out, depth + 1)


def _plain(x: object) -> object:
    """A subclass of a plain type as that type; a numpy scalar as its Python value."""
    for base in _PLAIN:
        if isinstance(x, base):
            return base(x)
    if type(x).__module__ == "numpy" and getattr(x, "shape", None) == ():
        return x.item()
    raise TypeError(f"a {type(x).__name__} cannot cross the sandbox: only None, bool, int, float, complex, "
                    "str, bytes and lists, tuples, dicts, sets and frozensets of them")


def decode(data: bytes) -> object:
    try:
        value, end = _decode(data, 0, 0)
    except Exception as err:  # whatever the bytes, the result is a value or BadMessage
        raise BadMessage(f"not plain data ({type(err).__name__})") from None
    if end != len(data):
        raise BadMessage("bytes after the value")
    return value


def _decode(data: bytes, pos: int, depth: int) -> tuple:
    if depth > MAX_DEPTH:
        raise ValueError("nested too deeply")
    tag = data[pos : pos + 1]
    pos += 1
    if tag in _CONSTANTS:
        return _CONSTANTS[tag], pos
    if tag in (b"i", b"f", b"c"):
        end = data.index(b";", pos)
        text = data[pos:end]
        if tag == b"i":
            return int(text, 16), end + 1
        if tag == b"f":
            return float(text), end + 1
        real, imag = text.split(b",")
        return complex(float(real), float(imag)), end + 1
    colon = data.index(b":", pos)
    count = data[pos:colon]
    if not (count.isdigit() and len(count) <= 12) or tag not in (b"s", b"b", b"d", *_BUILD):
        raise ValueError("a bad tag or count")
    count, pos = int(count), colon + 1
    if tag in (b"s", b"b"):
        chunk = data[pos : pos + count]
        if len(chunk) != count:
            raise ValueError("short")
        return (chunk.decode("utf-8", "surrogatepass") if tag == b"s" else chunk), pos + count
    if count > len(data) - pos:  # every item takes a byte at least
        raise ValueError("short")
    items = []
    for _ in range(2 * count if tag == b"d" else count):
        item, pos = _decode(data, pos, depth + 1)
        items.append(item)
    if tag == b"d":
        return dict(zip(items[::2], items[1::2])), pos
    return _BUILD[tag](items), pos


class Channel:
    """One end: ``send(value)`` and ``receive()`` over two pipe ends. ``peer``: a pidfd of the other
    process, so that waiting ends when it does (a child of it may still hold the pipe open)."""

    def __init__(self, read_fd: int, write_fd: int, peer: "int | None" = None) -> None:
        self.read_fd, self.write_fd, self.peer = read_fd, write_fd, peer
        self._buffer = bytearray()

    def send(self, value: object) -> None:
        data = encode(value)  # all of it before the first byte goes: a value that cannot cross sends nothing
        view = memoryview(b"%d\n" % len(data) + data)
        while view:
            view = view[os.write(self.write_fd, view) :]

    def receive(self) -> object:
        while (newline := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > 12:
                raise BadMessage("no length")
            self._fill()
        size = bytes(self._buffer[:newline])
        if not (size.isdigit() and len(size) <= 12 and int(size) <= MAX_MESSAGE):
            raise BadMessage("a bad length")
        end = newline + 1 + int(size)
        while len(self._buffer) < end:
            self._fill()
        data = bytes(self._buffer[newline + 1 : end])
        del self._buffer[:end]
        return decode(data)

    def _fill(self) -> None:
        if self.peer is not None and self.read_fd not in select.select([self.read_fd, self.peer], [], [])[0]:
            raise ChannelClosed("the other process ended")
        chunk = os.read(self.read_fd, 1 << 16)
        if not chunk:
            raise ChannelClosed("the other process closed the channel")
        self._buffer += chunk


class Program:
    """The program as the tests see it: ``program.name(*args, **kwargs)`` is a call of the program's
    function ``name`` in its own process (any name but this class's own: ``loaded``, ``failure``).
    Once the program failed to run to its end or the channel failed (a bad reply, the process
    gone), ``failure`` holds the error, even if a test caught it."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._calls = 0
        self._loaded = False
        self.failure: "BaseException | None" = None

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def call(*args, **kwargs):
            self.loaded()
            self._calls += 1
            sent = list(args)
            self._send(("call", self._calls, name, sent, kwargs))
            return self._answer(self._calls, sent)

        call.__name__ = call.__qualname__ = name
        return call

    def loaded(self) -> None:
        """Wait for the program's own code to have run (call 0), once; raise what it raised. The
        first call waits for it: until then the tests' own parts run beside the program's code."""
        if not self._loaded:
            self._loaded = True
            try:
                self._answer(0, [])
            except BaseException as err:
                self.failure = self.failure or err
                raise

    def _send(self, message: tuple) -> None:
        try:
            self._channel.send(message)
        except OSError as err:  # EPIPE: the program's process is gone
            self.failure = ChannelClosed(str(err))
            raise self.failure from None

    def _answer(self, call: int, sent: list) -> object:
        try:
            reply = self._channel.receive()
            if not (type(reply) is tuple and len(reply) == 4 and reply[1] == call and reply[0] in ("ok", "raised")):
                raise BadMessage(f"a reply that is not the answer to call {call}")
            kind, _, value, extra = reply
            if kind == "raised" and type(value) is list and type(extra) is list:
                error = _rebuilt(value, extra)
            elif not (kind == "ok" and type(extra) is list and len(extra) == len(sent)):
                raise BadMessage(f"a reply that is not the answer to call {call}")
        except (BadMessage, ChannelClosed) as err:
            self.failure = err
            raise
        if kind == "raised":
            raise error
        for before, after in zip(sent, extra):  # the arguments as the call left them
            if type(before) is list and type(after) is list:
                before[:] = after
            elif type(before) is type(after) and type(before) in (dict, set):
                before.clear()
                before.update(after)
        return value


def _rebuilt(names: list, args: list) -> BaseException:
    """The first builtin exception class among ``names`` (the program's exception's MRO), with its arguments."""
    kind = Exception
    for name in names[:64]:
        found = getattr(builtins, name, None) if type(name) is str else None
        if isinstance(found, type) and issubclass(found, BaseException):
            kind = found
            break
    try:
        return kind(*args)
    except Exception:  # arguments this class does not take (the program's class took them)
        error = kind.__new__(kind)
        error.args = tuple(args)
        return error


def serve(channel: Channel, source: str, namespace: dict) -> None:
    """The program's process: run ``source`` (call 0), then answer calls until the channel closes."""
    try:
        exec(compile(source, "<program>", "exec"), namespace)
    except BaseException as err:  # SystemExit too: the program did not run to its end
        _send_raised(channel, 0, err)
        return
    _flush()
    channel.send(("ok", 0, None, []))
    while True:
        try:
            _, call, name, args, kwargs = channel.receive()
        except ChannelClosed:
            return
        try:
            if name not in namespace:
                raise NameError(f"name {name!r} is not defined")
            result = namespace[name](*args, **kwargs)
            _flush()
            channel.send(("ok", call, result, [a if type(a) in (list, dict, set) else None for a in args]))
        except BaseException as err:
            _send_raised(channel, call, err)


def _send_raised(channel: Channel, call: int, err: BaseException) -> None:
    try:
        sys.__excepthook__(type(err), err, err.__traceback__)  # the C printer: no import, no source lines
        names = [kind.__name__ for kind in type(err).__mro__]
    except BaseException:  # the program may have broken printing or its exception's class
        names = ["Exception"]
    _flush()
    try:
        channel.send(("raised", call, names, list(err.args)))
    except BaseException:  # arguments that cannot cross: their text
        channel.send(("raised", call, names, [_text(err)]))


def _text(err: BaseException) -> str:
    try:
        return str(err)[:1000]
    except BaseException:  # a __str__ that raises
        return ""


def _flush() -> None:
    """The program's output so far, out before its answer."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # the program may have replaced or closed them; its output is all we lose
            pass
