"""Builds documents.jsonl from the hand-written originals below; deterministic (seed 7).

Run from the project root: `python experiments/annotation/build_documents.py`. The originals
and the wording variants are written by hand for this project; the exact duplicates and the
formatting-only near duplicates (case, whitespace, punctuation) are derived here so their
share is exact and reproducible.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

ORIGINALS: dict[str, list[str]] = {
    "billing": [
        "I was charged twice for my March subscription. Please refund the duplicate payment.",
        "Why did my monthly bill go up from $12 to $18 without any notice?",
        "Can I get an invoice with my company's VAT number on it?",
        "My card was declined but the money still left my account.",
        "I cancelled last week, yet you billed me again today.",
        "How do I switch from monthly to annual billing to get the discount?",
        "The promo code SPRING20 was not applied at checkout and I paid full price.",
        "Please send me receipts for all payments made in 2025.",
        "I was charged a late fee even though I paid on the due date.",
        "Is there a student discount, and can it be applied to my current plan?",
        "Your refund was promised within 5 days and it has been three weeks.",
        "I see a charge from you that I don't recognise. What is it for?",
        "Can I pay by bank transfer instead of credit card?",
        "The invoice lists the wrong billing address. How do I correct it?",
        "I was upgraded to the premium tier automatically and charged for it.",
        "Do you offer partial refunds if I downgrade mid-month?",
        "My payment keeps failing with error code 402.",
        "Why is there a currency conversion fee when I'm paying in euros?",
        "Please update the credit card on file; the old one expired.",
        "I got billed for three seats but our team only has two people.",
        "The tax on my last invoice looks too high for my region.",
        "Can you split my payment into two installments?",
        "The free trial ended and I was charged without a reminder email.",
        "I need a credit note for the order I returned.",
    ],
    "shipping": [
        "My package has been stuck in transit for ten days.",
        "The tracking number you sent me doesn't work on the courier's site.",
        "Can I change the delivery address after the order has shipped?",
        "The box arrived crushed and the lamp inside is broken.",
        "Do you ship to Norway, and how long does it take?",
        "I received someone else's order instead of mine.",
        "The courier marked my parcel as delivered but nothing arrived.",
        "How much does express shipping cost for a 3 kg parcel?",
        "Only two of the four items I ordered were in the box.",
        "Can I pick up my order at a parcel locker instead?",
        "My order says 'preparing for shipment' for a week now.",
        "The delivery driver left the package in the rain and it's soaked.",
        "Is it possible to schedule delivery for a Saturday?",
        "Customs is asking me to pay import duties. Wasn't that included?",
        "I need this by Friday. Can you upgrade the shipping?",
        "The parcel was returned to sender because of a wrong house number.",
        "Do you offer free shipping on orders over 50 euros?",
        "The estimated delivery date keeps moving back every day.",
        "My order was split into two shipments and one is missing.",
        "Can you ship without the retail packaging? It's a gift.",
        "The wrong size arrived; I ordered a medium and got a large.",
        "How do I print a return shipping label?",
        "My parcel is at the depot but they won't deliver it to my flat.",
        "Why was I charged shipping on a free-shipping promotion?",
    ],
    "technical": [
        "The app crashes every time I open the settings page on Android 14.",
        "I can't connect the device to my Wi-Fi; it says authentication failed.",
        "The export to CSV button does nothing in Firefox.",
        "After the last update, sync between my phone and laptop stopped working.",
        "The web dashboard shows a blank page after login.",
        "Notifications are not arriving on my iPhone even though they're enabled.",
        "The API returns a 500 error when I send a request with an empty body.",
        "The firmware update failed at 80% and now the device won't turn on.",
        "Search results are empty even for products I know exist.",
        "The video keeps buffering although my internet connection is fast.",
        "I get 'certificate expired' when the desktop client starts.",
        "The printer driver won't install on macOS Sonoma.",
        "Uploading a file larger than 10 MB always times out.",
        "Dark mode makes the text in the reports unreadable.",
        "The Bluetooth headphones disconnect every few minutes.",
        "The smart thermostat shows the wrong temperature by about 3 degrees.",
        "Webhook deliveries to our server stopped yesterday at noon.",
        "The app drains my battery even when it's closed.",
        "Two-factor codes from the authenticator are always rejected as invalid.",
        "The page layout breaks on small screens; buttons overlap.",
        "Importing my contacts from Google fails with an unknown error.",
        "The camera feed freezes after about a minute.",
    ],
    "account": [
        "I forgot my password and the reset email never arrives.",
        "How do I change the email address on my account?",
        "Please delete my account and all my personal data.",
        "My account was locked after too many login attempts.",
        "Someone logged into my account from another country.",
        "Can I merge my two accounts into one?",
        "How do I add a second user to our family plan?",
        "I want to change my username but the option is greyed out.",
        "I no longer have access to the phone number used for verification.",
        "Please send me a copy of all the data you hold about me.",
        "How do I turn off marketing emails?",
        "My profile picture won't update.",
        "I signed up with Google and now want to use a normal password.",
        "Can I transfer ownership of the workspace to a colleague?",
        "The verification link says it has expired.",
        "How do I close my account but keep my order history?",
        "I was logged out on all devices and can't get back in.",
        "Please remove my old address from my saved addresses.",
    ],
    "other": [
        "Do you have any job openings in the Berlin office?",
        "Great service, the staff at your Lyon store were very helpful!",
        "What are your opening hours on public holidays?",
        "Are your products vegan and cruelty-free?",
        "I'd like to suggest adding a wishlist feature.",
        "Can I visit your warehouse for a school project?",
        "Who do I contact about a partnership proposal?",
        "Just wanted to say the new design looks fantastic.",
        "Is there a phone number I can call instead of chatting?",
        "Do you sponsor local sports clubs?",
        "What is your policy on recycling old devices?",
        "The music in your advert is lovely; what's the song called?",
    ],
}

# Hand-written wording variants: (label, index into ORIGINALS[label], variant text).
WORDING: list[tuple[str, int, str]] = [
    ("billing", 0, "I got charged twice for my March subscription, please refund the duplicate payment."),
    ("billing", 16, "My payment keeps failing with the error code 402."),
    ("shipping", 0, "My package has been stuck in transit for 10 days."),
    ("shipping", 6, "The courier marked my parcel as delivered, but nothing ever arrived."),
    ("technical", 0, "The app crashes each time I open the settings page on Android 14."),
    ("technical", 4, "The web dashboard shows a blank page after I log in."),
    ("account", 0, "I forgot my password and the reset e-mail never arrives."),
]

N_EXACT = 21
N_FORMAT = 14  # formatting-only near duplicates; with WORDING that makes 21 near duplicates


def _formatting_variant(text: str, how: str) -> str:
    if how == "case":
        return text.lower() if text != text.lower() else text.upper()
    if how == "whitespace":
        words = text.split(" ")
        return "  " + "  ".join(words) + " \n"
    # punctuation: drop sentence punctuation, add a trailing "!!"
    return text.replace(",", "").replace(".", "").replace("?", "").rstrip() + "!!"


def build() -> list[dict[str, str]]:
    rng = random.Random(7)
    originals = [(label, text) for label, texts in ORIGINALS.items() for text in texts]
    rng.shuffle(originals)
    # position-independent keys first; renumbered by final position at the end
    rows: list[dict[str, str]] = [
        {"key": f"o{i}", "text": t, "label": lab} for i, (lab, t) in enumerate(originals)
    ]
    index_of = {(lab, t): i for i, (lab, t) in enumerate(originals)}
    dups: list[dict[str, str]] = []
    for j, i in enumerate(rng.sample(range(len(originals)), N_EXACT)):
        lab, t = originals[i]
        dups.append({"key": f"e{j}", "text": t, "label": lab, "dup_of": f"o{i}", "dup_kind": "exact"})
    for j, (lab, k, text) in enumerate(WORDING):
        i = index_of[(lab, ORIGINALS[lab][k])]
        dups.append(
            {
                "key": f"w{j}",
                "text": text,
                "label": lab,
                "dup_of": f"o{i}",
                "dup_kind": "near",
                "variation": "wording",
            }
        )
    hows = ["case", "whitespace", "punctuation"]
    for j, i in enumerate(rng.sample(range(len(originals)), N_FORMAT)):
        lab, t = originals[i]
        how = hows[j % 3]
        dups.append(
            {
                "key": f"f{j}",
                "text": _formatting_variant(t, how),
                "label": lab,
                "dup_of": f"o{i}",
                "dup_kind": "near",
                "variation": how,
            }
        )
    # each duplicate goes somewhere after its original, as in a real message stream
    stream = list(rows)
    for d in dups:
        pos = next(n for n, r in enumerate(stream) if r["key"] == d["dup_of"])
        stream.insert(rng.randint(pos + 1, len(stream)), d)
    ids = {r["key"]: f"doc-{n + 1:03d}" for n, r in enumerate(stream)}
    out: list[dict[str, str]] = []
    for r in stream:
        row = {"id": ids[r["key"]], "text": r["text"], "label": r["label"]}
        if "dup_of" in r:
            row["dup_of"] = ids[r["dup_of"]]
            row["dup_kind"] = r["dup_kind"]
            if "variation" in r:
                row["variation"] = r["variation"]
        out.append(row)
    return out


def main() -> None:
    rows = build()
    with (HERE / "documents.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} documents")


if __name__ == "__main__":
    main()
