"""FF1 against NIST's published samples (SP 800-38G examples, FF1 samples 1-9), and as a
permutation: every number of a small domain has exactly one image, and decrypting undoes it."""

import random

import pytest

from hub.kit.fpe import FF1

KEY_128 = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
KEY_192 = KEY_128 + bytes.fromhex("EF4359D8D580AA4F")
KEY_256 = KEY_192 + bytes.fromhex("7F036D6F04FC6A94")
DIGITS_36 = "0123456789abcdefghijklmnopqrstuvwxyz"

SAMPLES = [
    (KEY_128, 10, "", "0123456789", "2433477484"),
    (KEY_128, 10, "39383736353433323130", "0123456789", "6124200773"),
    (KEY_128, 36, "3737373770717273373737", "0123456789abcdefghi", "a9tv40mll9kdu509eum"),
    (KEY_192, 10, "", "0123456789", "2830668132"),
    (KEY_192, 10, "39383736353433323130", "0123456789", "2496655549"),
    (KEY_192, 36, "3737373770717273373737", "0123456789abcdefghi", "xbj3kv35jrawxv32ysr"),
    (KEY_256, 10, "", "0123456789", "6657667009"),
    (KEY_256, 10, "39383736353433323130", "0123456789", "1001623463"),
    (KEY_256, 36, "3737373770717273373737", "0123456789abcdefghi", "xs8a0azh2avyalyzuwd"),
]


def _text(number: int, *, radix: int, digits: int) -> str:
    out = []
    for _ in range(digits):
        number, digit = divmod(number, radix)
        out.append(DIGITS_36[digit])
    return "".join(reversed(out))


@pytest.mark.parametrize(("key", "radix", "tweak", "plain", "expected"), SAMPLES)
def test_nist_samples(key: bytes, radix: int, tweak: str, plain: str, expected: str) -> None:
    ff1 = FF1(key, radix=radix, digits=len(plain))
    [image] = ff1.encrypt([int(plain, radix)], tweak=bytes.fromhex(tweak))
    assert _text(image, radix=radix, digits=len(plain)) == expected
    assert ff1.decrypt([image], tweak=bytes.fromhex(tweak)) == [int(plain, radix)]


def test_images_are_distinct_in_the_domain_and_each_tweak_permutes_differently() -> None:
    # Decrypting undoes encrypting, so the map is one-to-one on a finite domain: a permutation.
    ff1 = FF1(KEY_256, radix=10, digits=6)
    numbers = list(range(0, 10**6, 37))
    images = ff1.encrypt(numbers, tweak=b"police-north")
    assert len(set(images)) == len(numbers)
    assert all(0 <= image < 10**6 for image in images)
    assert ff1.decrypt(images, tweak=b"police-north") == numbers
    other = ff1.encrypt(numbers[:1000], tweak=b"city-analytics")
    assert sum(a == b for a, b in zip(other, images, strict=False)) < 5


def test_batches_agree_with_single_numbers_and_long_tweaks_work() -> None:
    ff1 = FF1(KEY_128, radix=10, digits=15)
    numbers = [random.randrange(10**15) for _ in range(50)] + [0, 10**15 - 1]
    tweak = b"an agency with a rather long registered name, past one block"
    batch = ff1.encrypt(numbers, tweak=tweak)
    assert batch == [ff1.encrypt([n], tweak=tweak)[0] for n in numbers]
    assert ff1.decrypt(batch, tweak=tweak) == numbers
    assert ff1.encrypt([], tweak=tweak) == []


def test_numbers_outside_the_domain_and_bad_shapes_are_refused() -> None:
    ff1 = FF1(KEY_128, radix=10, digits=15)
    with pytest.raises(ValueError, match="must lie in"):
        ff1.encrypt([10**15])
    with pytest.raises(ValueError, match="must lie in"):
        ff1.decrypt([-1])
    with pytest.raises(ValueError, match="at least 10"):
        FF1(KEY_128, radix=10, digits=5)
    with pytest.raises(ValueError, match="12 bytes"):
        FF1(KEY_128, radix=2**16, digits=13)
