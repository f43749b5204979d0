"""Common English names: the synthetic generator draws from them, the matcher reads nicknames.

Invented data only. Lists are in rough order of frequency (most common first) so a Zipf weight
by rank gives a realistic head of Smiths and Johns; the surname tail is built from English
place-name parts (``Ash`` + ``worth``) so a million people do not share a few hundred names.
"""

from __future__ import annotations

from collections.abc import Mapping

COMMON_SURNAMES: tuple[str, ...] = tuple("""
Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson Thompson
Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson Wood Turner
Martin Cooper Hill Ward Morris Moore Clark Lee King Baker Harrison Morgan Allen James Scott
Phillips Watson Davis Parker Price Bennett Young Griffiths Mitchell Kelly Cook Carter
Richardson Bailey Collins Bell Shaw Murphy Miller Cox Richards Khan Marshall Anderson Simpson
Ellis Adams Singh Begum Wilkinson Foster Chapman Powell Webb Rogers Gray Mason Ali Hunt Hussain
Campbell Matthews Owen Palmer Holmes Mills Barnes Knight Lloyd Butler Russell Barker Fisher
Stevens Jenkins Murray Dixon Harvey Graham Pearson Ahmed Fletcher Walsh Kaur Gibson Howard
Andrews Stewart Elliott Reynolds Saunders Payne Fox Ford Pearce Day Brooks West Lawrence Cole
Atkinson Bradley Spencer Gill Dawson Ball Burton O'Brien Watts Rose Booth Perry Ryan Grant
Wells Armstrong Francis Rees Hayes Hart Hudson Newman Barrett Webster Hunter Gregory Carr
Lowe Page Marsh Riley Dunn Woods Parsons Berry Stone Reid Holland Hawkins Harding Porter
Robertson Newton Oliver Reed Kennedy Williamson Bird Gardner Shah Dean Lane Cooke Bates Henderson
""".split())

_PLACE_PREFIXES = """Ash Black Brad Brook Broad Brom Cal Chad Cliff Cold Crom Dart Dun East Elm
Fair Farn Fen Gold Hadd Hal Hart Hay Heath Hol Horn Kings Lang Lind Long Mid Mill Moor Nor Oak
Pen Red Rid Rock Ros South Stan Stock Sut Thorn Under Wake Wal West Whit Wick Wind Bar Bel Bur
Car Clay Down Ever Gar""".split()
_PLACE_SUFFIXES = """ford ley ton wood field worth by ham well more dale bury combe hurst stone
wick brook croft gate land ridge shaw thorpe cliffe den""".split()

#: Invented surnames in the long tail (about 1,500): plausible, English-sounding, rare each.
TAIL_SURNAMES: tuple[str, ...] = tuple(
    p + s for p in _PLACE_PREFIXES for s in _PLACE_SUFFIXES if p.lower()[-1] != s[0])

MALE_GIVEN: tuple[str, ...] = tuple("""
John David Michael Paul Andrew Mark James Peter Robert Richard Stephen Christopher Thomas Daniel
Matthew William Anthony Simon Ian Gary Kevin Martin Jason Lee Darren Craig Stuart Neil Philip
Alan Graham Keith Brian Colin Nigel Adam Benjamin Samuel Joseph Luke Ryan Jamie Nathan Oliver
Harry George Charles Edward Alexander Jonathan Nicholas Timothy Patrick Kenneth Ronald Raymond
Terence Dennis Derek Frederick Henry Lewis Jake Connor Callum Kieran Mohammed Ahmed Arjun Joshua
Jacob Liam Noah Leo Alfie Dylan Scott Dean Steven Gareth Wayne Shaun Carl Barry Trevor Roger
Malcolm Gordon Douglas Ross Aaron Jordan Tyler Owen Rhys Imran Tariq Hassan Omar Ravi
""".split())

FEMALE_GIVEN: tuple[str, ...] = tuple("""
Sarah Emma Claire Laura Rebecca Rachel Lisa Helen Nicola Karen Susan Elizabeth Margaret Mary
Catherine Jennifer Patricia Amy Lucy Emily Jessica Sophie Charlotte Hannah Olivia Chloe Victoria
Samantha Michelle Joanne Deborah Julie Amanda Jacqueline Alison Angela Louise Kimberley Natalie
Danielle Gemma Stephanie Jade Zoe Megan Ellie Grace Abigail Jane Janet Ann Christine Linda
Barbara Dorothy Joan Pauline Sandra Tracey Kelly Leanne Natasha Aisha Fatima Priya Ruth Frances
Alexandra Josephine Eleanor Isabel Amelia Ava Mia Katherine Joyce Irene Valerie Wendy Carol
Shirley Maureen Sharon Donna Hayley Kirsty Vicky Kerry Yasmin Nadia Sana Anita Bethany Holly
""".split())

#: Given name -> the short forms people use for it, and its other spellings ("Steven").
NICKNAMES: Mapping[str, tuple[str, ...]] = {
    "John": ("Jack", "Johnny", "Jon"), "David": ("Dave", "Davey"), "Michael": ("Mike", "Mick"),
    "Andrew": ("Andy", "Drew"), "James": ("Jim", "Jimmy", "Jamie"), "Peter": ("Pete",),
    "Robert": ("Rob", "Bob", "Bobby", "Robbie"), "Richard": ("Rich", "Dick", "Rick", "Richie"),
    "Stephen": ("Steve", "Steven"), "Christopher": ("Chris", "Kit"),
    "Thomas": ("Tom", "Tommy"), "Daniel": ("Dan", "Danny"), "Matthew": ("Matt",),
    "William": ("Will", "Bill", "Billy", "Liam"), "Anthony": ("Tony", "Ant"),
    "Philip": ("Phil",), "Benjamin": ("Ben", "Benny"), "Samuel": ("Sam", "Sammy"),
    "Joseph": ("Joe", "Joey"), "Oliver": ("Ollie",), "Charles": ("Charlie", "Chas"),
    "Edward": ("Ed", "Eddie", "Ted", "Ned"), "Alexander": ("Alex", "Sandy"),
    "Jonathan": ("Jon", "Jonny"), "Nicholas": ("Nick", "Nicky"), "Timothy": ("Tim",),
    "Patrick": ("Pat", "Paddy"), "Kenneth": ("Ken", "Kenny"), "Ronald": ("Ron", "Ronnie"),
    "Raymond": ("Ray",), "Terence": ("Terry",), "Frederick": ("Fred", "Freddie"),
    "Henry": ("Harry", "Hal"), "Joshua": ("Josh",), "Jacob": ("Jake",), "Gareth": ("Gaz",),
    "Douglas": ("Doug",), "Malcolm": ("Mal",), "Mohammed": ("Mo",),
    "Elizabeth": ("Liz", "Beth", "Betty", "Lizzie", "Eliza"), "Margaret": ("Maggie", "Peggy"),
    "Catherine": ("Cathy", "Kate", "Katie", "Katherine", "Kathryn"),
    "Katherine": ("Kathy", "Kate", "Katie", "Kathryn"),
    "Jennifer": ("Jen", "Jenny"), "Patricia": ("Pat", "Trish", "Patty"), "Susan": ("Sue", "Suzy"),
    "Rebecca": ("Becky", "Becca"), "Victoria": ("Vicky", "Tori"), "Samantha": ("Sam", "Sammy"),
    "Nicola": ("Nicky", "Nikki"), "Joanne": ("Jo",), "Deborah": ("Debbie", "Deb"),
    "Amanda": ("Mandy",), "Jacqueline": ("Jackie",), "Kimberley": ("Kim",),
    "Stephanie": ("Steph",), "Abigail": ("Abby", "Abi"), "Christine": ("Chris", "Chrissie"),
    "Barbara": ("Babs",), "Dorothy": ("Dot", "Dolly"), "Natasha": ("Tash", "Tasha"),
    "Frances": ("Fran",), "Alexandra": ("Alex", "Sandra"), "Josephine": ("Jo", "Josie"),
    "Eleanor": ("Ellie", "Nell"), "Charlotte": ("Charlie", "Lottie"),
    "Jessica": ("Jess", "Jessie"), "Hannah": ("Annie",), "Valerie": ("Val",),
    "Bethany": ("Beth",), "Danielle": ("Dani",), "Amelia": ("Millie",), "Sarah": ("Sally",),
    "Mary": ("Molly", "Polly"), "Ann": ("Annie", "Anne"), "Louise": ("Lou",),
    "Isabel": ("Izzy", "Bella", "Isobel"), "Tracey": ("Tracy",), "Stuart": ("Stewart",),
}


def known_given_names() -> frozenset[str]:
    """Upper-cased given names that are names in their own right, nicknames included."""
    names = {*MALE_GIVEN, *FEMALE_GIVEN, *NICKNAMES}
    names.update(short for shorts in NICKNAMES.values() for short in shorts)
    return frozenset(name.upper() for name in names)


def nickname_groups() -> dict[str, frozenset[int]]:
    """Upper-cased name -> ids of the nickname groups it belongs to ("JO" is in two)."""
    groups: dict[str, set[int]] = {}
    for group_id, (full, shorts) in enumerate(NICKNAMES.items()):
        for name in (full, *shorts):
            groups.setdefault(name.upper(), set()).add(group_id)
    return {name: frozenset(ids) for name, ids in groups.items()}
