"""The phrasings the demo model's training conversations are made of (training/data.py).

Instructions and identities clients send, user questions of the simple intents (greetings,
capitals, facts, repeating words) and their held-out variants, the answers when no declared tool
fits, and the legacy fixed tool names. Kept apart from the builder so that the data is read
without the code that assembles it.
"""

from __future__ import annotations

PREAMBLE_INSTRUCTION = (
    "Before calling a tool, tell the user in one short sentence what you will do."
)
INSTRUCTIONS = (
    "You are a helpful assistant.",
    "Be concise.",
    "Answer in a friendly tone.",
    "You are a cheerful helper for a travel website.",
    "Keep answers short and clear.",
    "You help users with everyday questions.",
)
IDENTITIES = ("You are a small demo model.", "You are a helpful assistant built for testing.")

TRAIN_COUNTRIES = {
    "France": "Paris",
    "Germany": "Berlin",
    "Spain": "Madrid",
    "Italy": "Rome",
    "Japan": "Tokyo",
    "Canada": "Ottawa",
    "Egypt": "Cairo",
    "India": "New Delhi",
    "China": "Beijing",
    "Russia": "Moscow",
    "Poland": "Warsaw",
    "Austria": "Vienna",
    "Ireland": "Dublin",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Portugal": "Lisbon",
    "Greece": "Athens",
    "Peru": "Lima",
    "Kenya": "Nairobi",
    "Cuba": "Havana",
    "Chile": "Santiago",
    "Thailand": "Bangkok",
    "Brazil": "Brasilia",
    "Mexico": "Mexico City",
    "Australia": "Canberra",
    "Belgium": "Brussels",
    "Denmark": "Copenhagen",
    "Turkey": "Ankara",
}
HELDOUT_COUNTRIES = {
    "Finland": "Helsinki",
    "Hungary": "Budapest",
    "Ecuador": "Quito",
    "Argentina": "Buenos Aires",
    "Vietnam": "Hanoi",
}

FACTS = (
    ("How many days are in a week?", "There are seven days in a week.", "a week has seven days"),
    ("How many legs does a spider have?", "A spider has eight legs.", "spiders have eight legs"),
    ("What color is the sky on a clear day?", "The sky is blue on a clear day.", "the sky is blue"),
    ("How many hours are in a day?", "There are twenty four hours in a day.", "a day has 24 hours"),
    ("What is the largest ocean?", "The Pacific Ocean is the largest ocean.", "it is the Pacific"),
    ("What do bees make?", "Bees make honey.", "bees make honey"),
    (
        "How many months are in a year?",
        "There are twelve months in a year.",
        "a year has 12 months",
    ),
    ("What is water made of?", "Water is made of hydrogen and oxygen.", "water is H2O"),
    (
        "Which planet is closest to the sun?",
        "Mercury is the planet closest to the sun.",
        "Mercury is closest",
    ),
    (
        "What is the freezing point of water?",
        "Water freezes at 0 degrees celsius.",
        "water freezes at 0 C",
    ),
)

# User phrasings: index 0.. are for training; the HELDOUT_* ones never appear in training.
GREETINGS = (
    "Hello!",
    "Hi there.",
    "Good morning!",
    "Hey, how are you?",
    "Hi!",
    "Hello, assistant.",
    "Good evening!",
    "Hey there!",
    "Hi, nice to meet you.",
    "Hello, how is it going?",
    "Hey!",
    "Morning!",
    "Hi, can you help me?",
    "Hello there, friend.",
    "Good day!",
    "Hiya!",
)
HELDOUT_GREETINGS = ("Greetings, assistant!", "Yo, what's up?", "Howdy!", "Good afternoon to you.")
CAPITAL = (
    "What is the capital of {c}?",
    "Which city is the capital of {c}?",
    "Name the capital of {c}.",
    "What's the capital city of {c}?",
    "I forgot the capital of {c}. What is it?",
    "Capital of {c}?",
    "Which city is {c}'s capital?",
)
HELDOUT_CAPITAL = ("Tell me the capital of {c}, please.", "Do you know the capital of {c}?")
REPEAT = (
    "Repeat after me: {t}",
    "Say exactly this: {t}",
    "Please echo: {t}",
    "Repeat this text: {t}",
    "Copy these words: {t}",
    "Say it back to me: {t}",
    "Repeat the following: {t}",
    "Just repeat: {t}",
)
HELDOUT_REPEAT = ("Can you say back the phrase: {t}", "Echo the following words: {t}")

AGENT_INSTRUCTIONS = (
    "You are a helpful assistant. Use the tools when they help.",
    "You are a helpful agent. Call a tool when the user needs live data.",
    "You are an assistant with access to tools. Only use them when needed.",
    "You are a support agent for an online shop.",
    "Help the user. Prefer tools for facts you cannot know.",
    "You are a friendly assistant that answers in one sentence.",
)
HELDOUT_INSTRUCTIONS = (
    "You are a concise assistant. Tools are available if useful.",
    "Act as a personal assistant and be brief.",
)
CANNOT_FINALS = (
    "Sorry, I cannot {c} right now.",
    "I am not able to {c} with the tools I have.",
)
LEGACY = {"weather": "get_weather", "search": "search", "calculator": "calculator"}
LEGACY_PARAMS = {
    "get_weather": ["location", "unit"],
    "search": ["query"],
    "calculator": ["expression"],
}
SIMPLE_INTENTS = ("greeting", "capital", "fact", "repeat", "writing")

# Short writing requests: the answer is a few lines on the asked topic (the topic copied in).
TOPICS = (
    "the moon",
    "rain",
    "winter",
    "the forest",
    "the cat",
    "coffee",
    "the city",
    "a river",
    "music",
    "a friend",
    "the night",
    "spring",
    "the mountain",
    "the wind",
    "summer",
    "snow",
    "a book",
    "the garden",
    "the sun",
    "the dog",
    "home",
    "the train",
    "the morning",
    "love",
    "water",
    "a tree",
)
# Every topic's words are in the committed compact vocabulary (the sea's are not: the model
# could not write them).
HELDOUT_TOPICS = ("autumn", "the desert", "the sky", "a bird")
POEM_ASKS = (
    "Write a haiku about {t}.",
    "Write a short poem about {t}.",
    "Write a poem about {t}.",
    "Please write a haiku about {t}.",
    "Give me a short poem about {t}.",
)
PROSE_ASKS = (
    "Write one sentence about {t}.",
    "Write a short text about {t}.",
    "Say a few nice words about {t}.",
    "Describe {t} in a sentence.",
)
HELDOUT_WRITING_ASKS = ("Compose a haiku on {t}.", "Could you write a few lines about {t}?")
POEMS = (
    "{T} at first light,\nquiet and slow, then soft again.\nI still think of {t}.",
    "Soft words for {t},\na small song in the evening.\n{T} is with me.",
    "I walk with {t},\nthe day is long and gentle.\nThank you, {t}.",
)
PROSE = (
    "{T} is a small light in a long day.",
    "There is a calm and lovely moment in {t}.",
    "{T} is a gentle reason to slow down and enjoy the day.",
)
