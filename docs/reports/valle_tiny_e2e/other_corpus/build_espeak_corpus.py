"""Another small corpus, built the way a user would: two espeak-ng voices, 10 Harvard sentences each
(no sentence shared between voices or with the sample corpus), LibriTTS layout."""
import subprocess
from pathlib import Path
S = ["The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
     "It's easy to tell the depth of a well.", "These days a chicken leg is a rare dish.",
     "Rice is often served in round bowls.", "The juice of lemons makes fine punch.",
     "The box was thrown beside the parked truck.", "The hogs were fed chopped corn and garbage.",
     "Four hours of steady work faced us.", "A large size in stockings is hard to sell.",
     "The boy was there when the sun rose.", "A rod is used to catch pink salmon.",
     "The source of the huge river is the clear spring.", "Kick the ball straight and follow through.",
     "Help the woman get back to her feet.", "A pot of tea helps to pass the evening.",
     "Smoky fires lack flame and heat.", "The soft cushion broke the man's fall.",
     "The salt breeze came across from the sea.", "The girl at the booth sold fifty bonds."]
root = Path("LibriTTS/other")
for v, (spk, voice) in enumerate([("7001", "en-us+m3"), ("7002", "en-us+f2")]):
    d = root / spk / "1"; d.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(S[v * 10:(v + 1) * 10]):
        stem = d / f"{spk}_1_{i:06d}_000000"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", f"{stem}.wav", s], check=True)
        Path(f"{stem}.normalized.txt").write_text(s + "\n"); Path(f"{stem}.original.txt").write_text(s + "\n")
print("ok")
