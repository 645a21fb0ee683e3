"""The dialplan reading behind `ivr check`'s cross-references: patterns, arguments, labels."""
from ivr.pbx.crosscheck import Dialplan, goto_branches, matches, split_args


def test_extension_patterns_match_as_asterisk_does():
    assert matches("_X.", "5550100") and not matches("_X.", "s")
    assert matches("_100X", "1004") and not matches("_100X", "10045")
    assert matches("_[a-z].", "support") and not matches("_[a-z].", "Support")
    assert matches("_0X.", "05551234") and not matches("_0X.", "0")
    assert matches("_NXX", "234") and not matches("_NXX", "134")
    assert matches("5550100", "5550100") and not matches("5550100", "555010")


def test_arguments_split_only_at_the_top_level():
    assert split_args("PJSIP/trunk/sip:${EXTEN:1}@${TRUNK_PEER},60") == \
        ["PJSIP/trunk/sip:${EXTEN:1}@${TRUNK_PEER}", "60"]
    assert goto_branches("$[${MENU_TRIES} < 3]?s,menu") == ["s,menu"]
    assert goto_branches('$["${A}" = "b"]?yes:no') == ["yes", "no"]
    assert goto_branches("no question mark") == []


def test_priorities_and_labels_are_counted_per_extension():
    plan = Dialplan("[ctx]\nexten => s,1,Answer()\n same => n(menu),Background(x)\n"
                    " same => n,WaitExten()\nexten => 1,1,Goto(s,menu)\n", "x.conf")
    s = plan.contexts["ctx"].extensions[0]
    assert (s.name, s.priorities, s.labels) == ("s", 3, {"menu"})
    goto = [c for c in plan.calls if c.app == "Goto"][0]
    assert (goto.context, goto.extension, goto.args, goto.line) == ("ctx", "1", "s,menu", 5)
