"""Korean as it is pronounced, for the synthetic speakers (espeak-ng) of the demo,
the tests and the benchmarks. espeak-ng reads Hangul letter by letter.

espeak-ng's Korean says "감사합니다" as written, where every speaker says
"감사함니다"; the Vosk model's lexicon has the spoken form. So the synthetic
callers of the benchmarks and tests say what people say: the main rules of
standard pronunciation (표준 발음법) are applied to the text first: liaison of a
final consonant onto a following vowel (무엇을 -> 무어슬), nasalisation (합니다 ->
함니다, 국물 -> 궁물), ㄹ-assimilation (신라 -> 실라), ㅎ before a vowel or a plain
stop (좋은 -> 조은, 좋다 -> 조타) and tensing after a stop (학교 -> 학꾜). Only within
a word; text that is not Hangul is left as it is.
"""

CHO = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
JUNG = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"
JONG = [
    "",
    "ㄱ",
    "ㄲ",
    "ㄳ",
    "ㄴ",
    "ㄵ",
    "ㄶ",
    "ㄷ",
    "ㄹ",
    "ㄺ",
    "ㄻ",
    "ㄼ",
    "ㄽ",
    "ㄾ",
    "ㄿ",
    "ㅀ",
    "ㅁ",
    "ㅂ",
    "ㅄ",
    "ㅅ",
    "ㅆ",
    "ㅇ",
    "ㅈ",
    "ㅊ",
    "ㅋ",
    "ㅌ",
    "ㅍ",
    "ㅎ",
]


def dec(ch):
    o = ord(ch) - 0xAC00
    if not (0 <= o < 11172):
        return None
    return [o // 588, (o % 588) // 28, o % 28]


def enc(c, j, t):
    return chr(0xAC00 + c * 588 + j * 28 + t)


C = {k: i for i, k in enumerate(CHO)}
T = {k: i for i, k in enumerate(JONG)}
# final consonant -> (the consonant that moves on in liaison, what stays)
LIAISON = {
    "ㄱ": ("ㄱ", ""),
    "ㄲ": ("ㄲ", ""),
    "ㄳ": ("ㅆ", "ㄱ"),
    "ㄴ": ("ㄴ", ""),
    "ㄵ": ("ㅈ", "ㄴ"),
    "ㄶ": ("ㄴ", ""),
    "ㄷ": ("ㄷ", ""),
    "ㄹ": ("ㄹ", ""),
    "ㄺ": ("ㄱ", "ㄹ"),
    "ㄻ": ("ㅁ", "ㄹ"),
    "ㄼ": ("ㅂ", "ㄹ"),
    "ㄽ": ("ㅆ", "ㄹ"),
    "ㄾ": ("ㅌ", "ㄹ"),
    "ㄿ": ("ㅍ", "ㄹ"),
    "ㅀ": ("ㄹ", ""),
    "ㅁ": ("ㅁ", ""),
    "ㅂ": ("ㅂ", ""),
    "ㅄ": ("ㅆ", "ㅂ"),
    "ㅅ": ("ㅅ", ""),
    "ㅆ": ("ㅆ", ""),
    "ㅈ": ("ㅈ", ""),
    "ㅊ": ("ㅊ", ""),
    "ㅋ": ("ㅋ", ""),
    "ㅌ": ("ㅌ", ""),
    "ㅍ": ("ㅍ", ""),
    "ㅎ": ("", ""),
}
# final consonant as pronounced (7 representative sounds)
REP = {
    "ㄱ": "ㄱ",
    "ㄲ": "ㄱ",
    "ㄳ": "ㄱ",
    "ㅋ": "ㄱ",
    "ㄺ": "ㄱ",
    "ㄴ": "ㄴ",
    "ㄵ": "ㄴ",
    "ㄶ": "ㄴ",
    "ㄷ": "ㄷ",
    "ㅅ": "ㄷ",
    "ㅆ": "ㄷ",
    "ㅈ": "ㄷ",
    "ㅊ": "ㄷ",
    "ㅌ": "ㄷ",
    "ㅎ": "ㄷ",
    "ㄹ": "ㄹ",
    "ㄼ": "ㄹ",
    "ㄽ": "ㄹ",
    "ㄾ": "ㄹ",
    "ㅀ": "ㄹ",
    "ㅁ": "ㅁ",
    "ㄻ": "ㅁ",
    "ㅂ": "ㅂ",
    "ㅍ": "ㅂ",
    "ㅄ": "ㅂ",
    "ㄿ": "ㅂ",
    "ㅇ": "ㅇ",
}
NASAL = {"ㄱ": "ㅇ", "ㄷ": "ㄴ", "ㅂ": "ㅁ"}
ASP = {"ㄱ": "ㅋ", "ㄷ": "ㅌ", "ㅂ": "ㅍ", "ㅈ": "ㅊ"}
TENSE = {"ㄱ": "ㄲ", "ㄷ": "ㄸ", "ㅂ": "ㅃ", "ㅅ": "ㅆ", "ㅈ": "ㅉ"}


def pronounce(text: str) -> str:
    out = []
    for word in text.split(" "):
        syl = [dec(ch) for ch in word]
        if any(s is None for s in syl):
            out.append(word)
            continue
        for i in range(len(syl) - 1):
            a, b = syl[i], syl[i + 1]
            fin = JONG[a[2]]
            ini = CHO[b[0]]
            if not fin:
                continue
            if ini == "ㅇ":  # liaison (연음)
                move, stay = LIAISON.get(fin, (fin, ""))
                if fin in ("ㅎ", "ㄶ", "ㅀ"):
                    a[2] = (
                        T[{"ㅎ": "", "ㄶ": "", "ㅀ": ""}[fin]]
                        if fin == "ㅎ"
                        else T[{"ㄶ": "", "ㅀ": ""}[fin]]
                    )
                    if fin == "ㄶ":
                        b[0] = C["ㄴ"]
                    if fin == "ㅀ":
                        b[0] = C["ㄹ"]
                    continue
                if move and move != "ㅇ":
                    a[2] = T[stay]
                    b[0] = C[move]
                continue
            if fin in ("ㅎ", "ㄶ", "ㅀ") and ini in ASP:  # 좋다 -> 조타
                b[0] = C[ASP[ini]]
                a[2] = T[{"ㅎ": "", "ㄶ": "ㄴ", "ㅀ": "ㄹ"}[fin]]
                continue
            rep = REP.get(fin, fin)
            if ini in ("ㄴ", "ㅁ") and rep in NASAL:  # 합니다 -> 함니다
                a[2] = T[NASAL[rep]]
                continue
            if ini == "ㄹ" and rep in ("ㅁ", "ㅇ"):  # 심리 -> 심니
                b[0] = C["ㄴ"]
                continue
            if ini == "ㄹ" and rep == "ㄴ":
                a[2] = T["ㄹ"]
                continue  # 신라 -> 실라
            if rep == "ㄹ" and ini == "ㄴ":
                b[0] = C["ㄹ"]
                continue  # 설날 -> 설랄
            if rep in ("ㄱ", "ㄷ", "ㅂ") and ini in TENSE:  # 학교 -> 학꾜
                b[0] = C[TENSE[ini]]
        out.append("".join(enc(*s) for s in syl))
    return " ".join(out)
