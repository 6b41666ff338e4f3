"""Bodies gzip'd for the clients that ask (`processcache.web.gzipped`): what each Accept-Encoding gets."""

import gzip

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processcache.web.gzipped import SMALLEST, accepts_gzip, encode


@pytest.mark.parametrize(("header", "accepted"), [
    ("gzip", True), ("GZIP", True), ("gzip, deflate, br", True), ("br;q=1.0, gzip;q=0.8, *;q=0.1", True),
    ("x-gzip", True), ("*", True), (" gzip ; q=0.5", True),
    ("gzip;q=0", False), ("gzip;q=0.000", False), ("*;q=0", False), ("identity", False), ("br, deflate", False),
    ("", False), (None, False), ("gzip;q=often", False), ("gzipped", False),
])
def test_gzip_goes_to_the_clients_that_accept_it(header, accepted):
    assert accepts_gzip(header) is accepted
    body, headers = encode(b"x" * SMALLEST, header)
    assert headers["Vary"] == "Accept-Encoding"
    assert (headers.get("Content-Encoding") == "gzip") is accepted and (body != b"x" * SMALLEST) is accepted


def test_a_small_body_goes_as_it_is():
    assert encode(b"x" * (SMALLEST - 1), "gzip") == (b"x" * (SMALLEST - 1), {"Vary": "Accept-Encoding"})


@given(st.binary(max_size=5000), st.sampled_from(["gzip", "identity", None, "br, gzip;q=0.5"]))
def test_what_the_client_decodes_is_the_body(body, header):
    sent, headers = encode(body, header)
    assert (gzip.decompress(sent) if headers.get("Content-Encoding") == "gzip" else sent) == body
