"""The release-name parser, table-driven: names as people publish them on
Nyaa and Torznab indexers, and the fields each must give. Only the listed
fields are checked (``audio`` is compared as a set)."""
from __future__ import annotations

import pytest

from tstream_kit.anime.releases import normalise_title, parse_release

CASES: list[tuple[str, dict]] = [
    # --- fansub style: [Group] Title - NN [tags]
    ("[Group] Show Name - 05 [1080p].mkv",
     dict(group="Group", title="Show Name", episode=5, resolution="1080p", extension="mkv", batch=False)),
    ("[SubsPlease] Sousou no Frieren - 05 (1080p) [A1B2C3D4].mkv",
     dict(group="SubsPlease", title="Sousou no Frieren", episode=5, resolution="1080p", checksum="A1B2C3D4")),
    ("[SubsPlease] Sousou no Frieren - 28 (720p) [F00DCAFE].mkv",
     dict(title="Sousou no Frieren", episode=28, resolution="720p")),
    ("[SubsPlease] Sousou no Frieren - 28 (480p) [F00DCAFE].mkv",
     dict(title="Sousou no Frieren", episode=28, resolution="480p")),
    ("[Erai-raws] Kusuriya no Hitorigoto - 12 [1080p][Multiple Subtitle][ENG][POR-BR].mkv",
     dict(group="Erai-raws", title="Kusuriya no Hitorigoto", episode=12, resolution="1080p")),
    ("[Erai-raws] Shingeki no Kyojin - The Final Season - 05v2 [1080p][HEVC][Multiple Subtitle].mkv",
     dict(title="Shingeki no Kyojin - The Final Season", episode=5, version=2, codec="x265")),
    ("[HorribleSubs] One Piece - 900 [720p].mkv",
     dict(group="HorribleSubs", title="One Piece", episode=900, resolution="720p")),
    ("[Group] Show Name - 05v2 [1080p].mkv",
     dict(title="Show Name", episode=5, version=2)),
    ("[Group] Show Name - 12v3 (BD 1080p x265 FLAC) [DEADBEEF].mkv",
     dict(episode=12, version=3, source="BD", codec="x265", audio={"FLAC"}, checksum="DEADBEEF")),
    ("[ASW] Mob Psycho 100 - 07 [1080p HEVC x265 10Bit][AAC]",
     dict(group="ASW", title="Mob Psycho 100", episode=7, codec="x265", bit_depth=10, audio={"AAC"})),
    ("[Judas] 86 - Eighty Six - 03 [1080p][HEVC x265 10bit][Eng-Subs].mkv",
     dict(title="86 - Eighty Six", episode=3, codec="x265", bit_depth=10)),
    ("[Tsundere-Raws] Steins;Gate 0 - 11 [WEB 1080p x264 AAC].mkv",
     dict(title="Steins;Gate 0", episode=11, source="WEB", codec="x264", audio={"AAC"})),
    ("[EMBER] Spy x Family (2023) (Season 2) - 04 [1080p] [HEVC WEBRip DDP].mkv",
     dict(group="EMBER", title="Spy x Family", episode=4, season=2, year=2023, source="WEB", audio={"E-AC3"})),
    ("[Anime Time] Jujutsu Kaisen - 24 [1080p][HEVC 10bit x265][AAC][Multi Sub].mkv",
     dict(group="Anime Time", title="Jujutsu Kaisen", episode=24, codec="x265")),
    ("[Commie] Bakemonogatari - 15 [BD 720p AAC] [ABCD1234].mkv",
     dict(title="Bakemonogatari", episode=15, source="BD", resolution="720p")),
    ("[SallySubs] Sousou no Frieren - 05 [AV1][1080p][Opus].mkv",
     dict(codec="AV1", audio={"Opus"}, episode=5)),
    ("[Cleo] Cowboy Bebop - 01 [Dual Audio 10bit BD1080p][HEVC-x265].mkv",
     dict(title="Cowboy Bebop", episode=1, dual_audio=True, source="BD", codec="x265", resolution="1080p")),
    ("[DKB] Blue Lock - S02E05 [1080p][HEVC x265 10bit][Multi-Subs].mkv",
     dict(title="Blue Lock", season=2, episode=5, codec="x265")),
    ("[Group] Show Name S2 - 05 [1080p].mkv",
     dict(title="Show Name", season=2, episode=5)),
    ("[Group] Show Name 2nd Season - 05 [720p].mkv",
     dict(title="Show Name", season=2, episode=5, resolution="720p")),
    ("[Group] Show Name Season 3 - 10 [1080p].mkv",
     dict(title="Show Name", season=3, episode=10)),
    ("[Group] Show Name Second Season - 08 [1080p].mkv",
     dict(title="Show Name", season=2, episode=8)),
    ("[Group] Show Name - 13.5 [1080p].mkv",
     dict(title="Show Name", episode=13)),
    ("[Group] Show Name [05][1080p].mkv",
     dict(title="Show Name", episode=5, resolution="1080p")),
    ("[Group] Show Name [05v2][720p].mp4",
     dict(title="Show Name", episode=5, version=2, extension="mp4")),
    ("[Group] Show Name 05 [1080p].mkv",
     dict(title="Show Name", episode=5)),
    ("[Group] Show Name - Episode 5 [1080p].mkv",
     dict(title="Show Name", episode=5)),
    ("[Group]_Show_Name_-_05_[720p][ABCDEF12].mkv",
     dict(group="Group", title="Show Name", episode=5, resolution="720p", checksum="ABCDEF12")),
    ("[Group] Show Name - 1100 [1080p].mkv",
     dict(title="Show Name", episode=1100)),
    ("【Group】 Show Name - 07 【1080p】.mkv",
     dict(group="Group", title="Show Name", episode=7)),
    # --- batches and ranges
    ("[Group] Show Name (01-12) [BD 1080p]",
     dict(group="Group", title="Show Name", episode=None, episode_start=1, episode_end=12, batch=True,
          source="BD", resolution="1080p")),
    ("[Group] Show Name [01-24] [1080p] [Batch]",
     dict(title="Show Name", episode_start=1, episode_end=24, batch=True)),
    ("[Group] Show Name - 01 ~ 12 [1080p]",
     dict(title="Show Name", episode_start=1, episode_end=12, batch=True)),
    ("[Group] Show Name - 01-12 [BD 1080p x265 FLAC]",
     dict(title="Show Name", episode_start=1, episode_end=12, batch=True, codec="x265", audio={"FLAC"})),
    ("[Group] Show Name 13-24 [WEB 720p]",
     dict(title="Show Name", episode_start=13, episode_end=24, source="WEB", resolution="720p")),
    ("[Judas] Vinland Saga (Season 2) [1080p][HEVC x265 10bit][Multi-Subs] (Batch)",
     dict(group="Judas", title="Vinland Saga", season=2, batch=True, episode=None, codec="x265")),
    ("[Moozzi2] Show Name [BD 1920x1080 x.264 FLAC] (Batch)",
     dict(title="Show Name", batch=True, resolution="1080p", codec="x264", source="BD", audio={"FLAC"})),
    ("[Beatrice-Raws] Show Name [BDRip 1920x1080 HEVC FLAC]",
     dict(title="Show Name", source="BD", codec="x265", resolution="1080p", episode=None)),
    ("[Group] Show Name (2019) [BD 1080p x264 AAC]",
     dict(title="Show Name", year=2019, episode=None, source="BD", codec="x264")),
    ("[Group] Show Name (Complete Series) [1080p][Dual Audio]",
     dict(title="Show Name", batch=True, dual_audio=True)),
    ("[Group] Show Name S01 [1080p BluRay x265 10bit] [Dual Audio]",
     dict(title="Show Name", season=1, batch=True, source="BD", codec="x265")),
    ("[Group] Show Name (01-12 END) [1080p]",
     dict(title="Show Name", episode_start=1, episode_end=12)),
    # --- scene style
    ("Show.Name.S01E05.1080p.WEB.x264-GRP",
     dict(title="Show Name", season=1, episode=5, resolution="1080p", source="WEB", codec="x264", group="GRP")),
    ("Show.Name.S01E05.1080p.WEB.x264-GRP.mkv",
     dict(title="Show Name", season=1, episode=5, group="GRP", extension="mkv")),
    ("Frieren.Beyond.Journeys.End.S01E05.1080p.CR.WEB-DL.AAC2.0.H.264-VARYG",
     dict(title="Frieren Beyond Journeys End", season=1, episode=5, source="WEB", codec="x264",
          audio={"AAC"}, group="VARYG")),
    ("Show.Name.S02E11.720p.HEVC.x265-MeGusta",
     dict(title="Show Name", season=2, episode=11, codec="x265", resolution="720p", group="MeGusta")),
    ("Show.Name.S01E01E02.1080p.BluRay.x264-GRP",
     dict(title="Show Name", season=1, episode_start=1, episode_end=2, source="BD")),
    ("Show.Name.S03E04.2160p.NF.WEB-DL.DDP5.1.HDR.HEVC-GRP",
     dict(title="Show Name", season=3, episode=4, resolution="2160p", source="WEB", codec="x265",
          audio={"E-AC3"})),
    ("Show.Name.2023.S01E09.1080p.AMZN.WEB-DL.DDP2.0.H.264-GRP",
     dict(title="Show Name", year=2023, season=1, episode=9, source="WEB")),
    ("Show.Name.S01.1080p.BluRay.x265-GRP",
     dict(title="Show Name", season=1, episode=None, batch=True, source="BD", codec="x265")),
    ("Show Name S02 1080p BluRay 10-bit x265 Dual Audio-GRP",
     dict(title="Show Name", season=2, batch=True, bit_depth=10, dual_audio=True, group="GRP")),
    ("Show.Name.S01E05v2.1080p.WEB.x264-GRP",
     dict(season=1, episode=5, version=2)),
    ("Show Name - S01E05 - Episode Title [1080p]",
     dict(title="Show Name", season=1, episode=5)),
    ("Show.Name.1x05.720p.HDTV.x264-GRP",
     dict(title="Show Name", season=1, episode=5, source="TV")),
    ("Show_Name_EP05_1080p_AV1.mkv",
     dict(title="Show Name", episode=5, codec="AV1")),
    ("Show.Name.E05.1080p.WEBRip.x264-GRP",
     dict(title="Show Name", episode=5, source="WEB")),
    ("Show.Name.S01E05.480p.DVDRip.x264-GRP",
     dict(resolution="480p", source="DVD")),
    ("Show Name S01E05 1080p WEB H264-GRP",
     dict(title="Show Name", season=1, episode=5, codec="x264", group="GRP")),
    ("Show.Name.S01E05.1080p.BluRay.TrueHD.5.1.x264-GRP",
     dict(audio={"TrueHD"}, source="BD")),
    ("Show.Name.S01E05.1080p.BluRay.DTS-HD.MA.5.1.x264-GRP",
     dict(audio={"DTS"})),
    ("Show.Name.S01E05.1080p.WEB.AC3.x264-GRP",
     dict(audio={"AC3"})),
    # --- odd but real
    ("[Group] Re:Zero kara Hajimeru Isekai Seikatsu - 03 [1080p].mkv",
     dict(title="Re:Zero kara Hajimeru Isekai Seikatsu", episode=3)),
    ("[Group] Kaguya-sama wa Kokurasetai - Ultra Romantic - 09 [1080p].mkv",
     dict(title="Kaguya-sama wa Kokurasetai - Ultra Romantic", episode=9)),
    ("[Group] Show Name - 05 (WEB 1080p AV1 E-AC3) [Dual Audio]",
     dict(episode=5, codec="AV1", audio={"E-AC3"}, dual_audio=True, source="WEB")),
    ("[Group] Show Name - 05 [4K][HEVC]",
     dict(episode=5, resolution="2160p", codec="x265")),
    ("[Group] Show Name - 05 [1080p][Hi10P]",
     dict(episode=5, bit_depth=10)),
    ("[Group] Show Name - Movie [BD 1080p]",
     dict(title="Show Name - Movie", episode=None, source="BD")),
    ("[Group] Show Name - 05 [WEB-DL 1080p H.265 AAC 2.0]",
     dict(episode=5, source="WEB", codec="x265", audio={"AAC"})),
    ("[Group] Show Name - 05 [BDRemux 1080p AVC FLAC]",
     dict(episode=5, source="BD", codec="x264", audio={"FLAC"})),
]


def test_there_are_enough_names() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("name,expected", CASES, ids=[c[0][:60] for c in CASES])
def test_parse_release(name: str, expected: dict) -> None:
    r = parse_release(name)
    got = {k: (set(getattr(r, k)) if k == "audio" else getattr(r, k)) for k in expected}
    assert got == expected, r


def test_covers_and_never_raises() -> None:
    assert parse_release("[G] Show (01-12) [1080p]").covers(7)
    assert not parse_release("[G] Show (01-12) [1080p]").covers(13)
    assert parse_release("[G] Show - 05 [1080p]").covers(5)
    for junk in ["", "   ", "[", "]]]", "()", "-", "....", "\x00", "[A]" * 50, "S99E9999", "1080p"]:
        parse_release(junk)


def test_normalise_title() -> None:
    assert normalise_title("Sousou no Frieren: Part 2") == "sousou no frieren part 2"
    assert normalise_title("Frieren: Beyond Journey’s End") == "frieren beyond journeys end"
