"""The embedded corpus: a procedural generator of short children's stories in simple English.

Each story has a character, a place, an object, a feeling, a problem and an ending, and sometimes dialogue,
a conflict, a twist, a hint of what is coming, or a moral. Story `i` of seed `s` is always the same text
(`random.Random` seeded with both), so any number of stories can be made, in any order, in seconds.

Every story comes with its TinyStories-Instruct metadata, exact by construction: the Words are three of the
slot fillers the story was built from (a noun, a verb and an adjective, in the form the story uses), the
Features are the optional parts it really contains, the Summary is built from the same choices.

The object comes back throughout the story, and the ending comes back to the hero's trait and pastime ("Then the
brave cat went back to sing with its friends."): a word said only once is the last thing a model learns to take
from a prompt, having never had a reason to copy it. `VERSION` changes with the text, so that token files and
tokenizers built from an older generator are not reused.
"""

import random
from dataclasses import dataclass, field

VERSION = 2  # of the stories' text: part of the key that decides whether token files are reused

NAMES = ["Lily", "Tom", "Mia", "Ben", "Sue", "Max", "Anna", "Sam", "Lucy", "Tim", "Ella", "Jack", "Zoe", "Leo",
         "Rosa", "Finn", "Kim", "Joe", "Nina", "Bob", "Amy", "Dan", "Ivy", "Ned", "Lola", "Pip", "Ruby", "Ollie"]
KINDS = [("girl", "she"), ("boy", "he"), ("cat", "it"), ("dog", "it"), ("bunny", "it"), ("bear", "it"),
         ("bird", "it"), ("fox", "it"), ("mouse", "it"), ("duck", "it"), ("frog", "it"), ("puppy", "it")]
TRAITS = ["little", "kind", "happy", "shy", "brave", "curious", "small", "funny", "gentle", "silly", "clever"]
PLACES = [("park", "in a big green park"), ("forest", "near a quiet forest"), ("farm", "on a sunny farm"),
          ("garden", "in a garden full of flowers"), ("beach", "by the blue sea"), ("town", "in a small town"),
          ("hill", "on top of a tall hill"), ("pond", "next to a clear pond"), ("house", "in a cozy house"),
          ("meadow", "in a wide meadow"), ("school", "near a busy school"), ("river", "close to a long river")]
VERBS = ["play", "jump", "run", "sing", "dance", "swim", "paint", "climb", "read", "bake", "dig", "skip", "build",
         "fly kites", "draw", "hop", "explore", "laugh", "count stars", "ride a bike"]
OBJECTS = ["ball", "kite", "box", "hat", "key", "book", "shell", "toy", "cup", "drum", "boat", "flower", "rock",
           "ring", "leaf", "bell", "apple", "balloon", "car", "doll", "map", "feather", "stick", "blanket"]
OBJECT_ADJECTIVES = ["red", "shiny", "blue", "soft", "old", "tiny", "big", "yellow", "pretty", "round", "green",
                     "golden", "smooth", "bright", "fuzzy", "heavy"]
FEELINGS = [("happy", "smiled"), ("excited", "clapped"), ("proud", "stood tall"), ("surprised", "gasped"),
            ("glad", "laughed"), ("curious", "looked closer")]
SAD_FEELINGS = ["sad", "upset", "scared", "worried", "lonely", "angry"]
FRIENDS = ["Mom", "Dad", "Grandma", "a wise owl", "a friendly dog", "an old turtle", "a little bird",
           "a big brother", "a kind neighbor", "a small squirrel"]
#  (key, what goes wrong, what the hero wants, the good ending, the bad ending)
PROBLEMS = [
    ("stuck", "the {obj} got stuck in a tall tree", "get the {obj} down from the tree",
     "{friend} helped {name} get the {obj} down. They used a long stick and the {obj} fell into {pos} arms",
     "Then a strong wind blew the {obj} far away. {name} never saw it again and felt very {sad}."),
    ("lost", "the {obj} rolled away and {name} could not find it", "find the lost {obj}",
     "{friend} helped {name} look everywhere. At last they found the {obj} under a bush",
     "They looked and looked, but the {obj} was gone forever. {name} went home feeling {sad}."),
    ("rain", "dark clouds came and it started to rain", "keep the {obj} dry",
     "{friend} gave {name} a big leaf. {name} held it over the {obj} until the rain stopped",
     "But the rain was too strong. The {obj} got wet and was ruined. {name} felt {sad} all day."),
    ("broken", "the {obj} fell and broke into two pieces", "fix the broken {obj}",
     "{friend} brought some glue. Together they fixed the {obj} and it looked new again",
     "But the pieces would not stick. The {obj} could not be fixed, and {name} felt {sad}."),
    ("water", "the {obj} fell into the water", "get the {obj} out of the water",
     "{friend} reached out with a net and pulled the {obj} out of the water",
     "But the water took the {obj} down the stream. It was gone, and {name} cried. {name} was very {sad}."),
]
MORALS = [
    ("sharing", "{name} learned that sharing makes everyone happy."),
    ("asking for help", "{name} learned that it is good to ask for help."),
    ("being careful", "{name} learned to be careful with the things {pron} loves."),
    ("patience", "{name} learned that being patient is important."),
    ("kindness", "{name} learned that being kind to friends is the best thing to do."),
]
TWISTS = [
    "But then, something surprising happened. The {obj} began to glow and sing a soft song!",
    "Then {name} saw that the {obj} was not just any {obj}. It was a tiny magic door!",
    "Suddenly, the {obj} started to talk. \"Thank you for finding me,\" it said.",
]
FORESHADOWING = [
    "{name} did not know that the day would bring a big surprise.",
    "The sky looked a little gray, but {name} did not notice.",
    "{name} had a funny feeling that something was about to happen.",
]
CONFLICTS = [
    ("{other} wanted the {obj} too. \"It is mine!\" said {other}. \"No, I found it!\" said {name}. "
     "They pulled and pulled, and they were both {sad}.",
     "Then {name} said, \"We can share it.\" {other} smiled, and they played with the {obj} together."),
    ("{other} laughed at the {obj} and said it was silly. {name} felt {sad} and wanted to cry.",
     "Later {other} said sorry, and {name} forgave {other}. They became good friends."),
]
FEATURE_NAMES = ("Dialogue", "BadEnding", "MoralValue", "Foreshadowing", "Conflict", "Twist")


def a(word: str) -> str:
    """The word with its indefinite article: a ball, an apple."""
    return ("an " if word[0] in "aeiou" else "a ") + word


@dataclass
class Story:
    """A generated story and its TinyStories-Instruct metadata."""

    story: str
    words: list[str]
    features: list[str]
    summary: str
    random_sentence: str = ""
    meta: dict = field(default_factory=dict)


def generate_story(index: int, seed: int = 0) -> Story:
    """Story number `index` of the corpus with this seed: always the same text."""
    rng = random.Random(seed * 1_000_003 + index)
    pick = rng.choice
    name = pick(NAMES)
    kind, pron = pick(KINDS)
    if kind == "girl":
        pron = "she"
    pos = {"she": "her", "he": "his", "it": "its"}[pron]
    trait = pick(TRAITS)
    place, place_phrase = pick(PLACES)
    verb = pick(VERBS)
    obj, obj_adj = pick(OBJECTS), pick(OBJECT_ADJECTIVES)
    feeling, reaction = pick(FEELINGS)
    sad = pick(SAD_FEELINGS)
    friend = pick(FRIENDS)
    other = pick([n for n in NAMES if n != name])
    problem_key, problem, goal, fix, bad_ending = pick(PROBLEMS)
    has = {f: rng.random() < p for f, p in zip(FEATURE_NAMES, (0.5, 0.25, 0.35, 0.2, 0.2, 0.15))}
    slots = dict(name=name, pron=pron, pos=pos, obj=obj, friend=friend, sad=sad, other=other)

    def fill(text: str) -> str:
        text = text.format(**slots)
        return text[0].upper() + text[1:]

    sentences = [
        f"Once upon a time, there was {a(trait)} {kind} named {name}.",
        f"{name} lived {place_phrase}.",
        f"Every day, {name} liked to {verb} with {pos} friends.",
    ]
    if has["Foreshadowing"]:
        sentences.append(fill(pick(FORESHADOWING)))
    sentences += [f"One day, {name} went to the {place} and found {a(obj_adj)} {obj}.",
                  f"{name} was so {feeling} that {pron} {reaction}."]
    if has["Dialogue"]:
        sentences.append(f"\"Look at this {obj_adj} {obj}!\" said {name}. \"I will keep it safe.\"")
    if has["Conflict"]:
        conflict, peace = pick(CONFLICTS)
        sentences.append(fill(conflict))
    if has["Twist"]:
        sentences.append(fill(pick(TWISTS)))
    sentences.append(fill(f"But then {problem}."))
    sentences.append(f"{name} felt {sad}. {pron.capitalize()} wanted to {goal.format(**slots)}.")
    if has["Dialogue"]:
        sentences.append(f"\"Can you help me?\" {name} asked {friend}. \"Yes, I will help you,\" said {friend}.")
    if has["BadEnding"]:
        sentences.append(fill(bad_ending))
        sentences.append(f"The {trait} {kind} did not want to {verb} for the rest of the day.")
        ending = f"loses the {obj}"
    else:
        sentences.append(fill(fix) + ".")
        if has["Conflict"]:
            sentences.append(fill(peace))
        sentences.append(f"{name} was {feeling} again and hugged the {obj_adj} {obj}.")
        sentences.append(f"Then the {trait} {kind} went back to {verb} with {pos} friends.")
        ending = f"gets help from {friend.replace('a ', '').replace('an ', '')} to {goal.format(**slots)}"
    if has["MoralValue"]:
        lesson, moral = pick(MORALS)
        sentences.append(fill(moral))
    text = " ".join(sentences)
    has["Dialogue"] = '"' in text  # conflicts and twists can bring their own quoted speech
    features = [f for f in FEATURE_NAMES if has[f]]
    words = [obj, verb.split()[0], rng.choice([obj_adj, feeling, trait])]
    rng.shuffle(words)
    summary = f"{name} the {kind} finds {a(obj_adj)} {obj} at the {place}, and {ending}."
    return Story(story=text, words=words, features=features, summary=summary,
                 random_sentence=rng.choice(sentences), meta={"problem": problem_key})


def generate_stories(n: int, seed: int = 0, start: int = 0) -> list[Story]:
    return [generate_story(i, seed) for i in range(start, start + n)]
