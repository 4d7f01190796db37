"""The router's weighted vocabulary: accent-folded phrases in four languages and their weight."""

from __future__ import annotations

from dataclasses import dataclass

REALISTIC = "realistic"
ARTISTIC = "artistic"
TEXT = "text"
# A neutral phrase scores nothing; it exists so that its words are not read as a cue
# ("appareil photo" is a camera in the scene, "panneau solaire" a solar panel, not a sign).
NEUTRAL = ""

# Weights: a strong cue decides on its own, a medium one nearly does, a weak one only tips a
# balance, and a hint never decides (it stays below the router's evidence threshold).
STRONG = 3.0
FIRM = 2.5
MEDIUM = 2.0
FAIR = 1.5
WEAK = 1.0
HINT = 0.5

# Each group is (category, weight, phrases). Phrases are lower case, accent-folded, and
# tokenised the way prompts are (hyphens and apostrophes split words: "low poly", "d album").
# A trailing "*" matches any word starting with the stem; a leading "~" also matches the word
# as the last part of a German compound ("Straßenschild", "Ölgemälde", "Naturfotografie"); a
# leading "@" counts the word in art_style only, because in the prompt a tool or a camera
# brand is usually a thing in the scene ("a pencil on a desk", "a tourist with a Leica").

_GROUPS: tuple[tuple[str, float, str], ...] = (
    # --- Photography: the medium itself, its gear, its techniques, in each language --------------
    (
        REALISTIC,
        STRONG,
        """
        photo, photograph, photography, photographi*, fotografic*, fotografisch*, photographs,
        photoshoot, photo shoot, raw photo, stock photo, stock image, stock footage, fotografia,
        ~foto, ~fotografie, photojournalism, photojournalistic, argentique, national geographic,
        nat geo, fotoperiodismo, photojournalisme, fotojournalismus, fotoreportaje,
        fotoreportage, photoreportage
        """,
    ),
    (
        REALISTIC,
        FIRM,
        """
        photoreal*, fotorreal*, fotoreal*, dslr, spiegelreflex*, shot on, shot on iphone,
        raw format, product shot, headshot, selfie, flat lay, long exposure, larga exposicion,
        pose longue, ~belichtung, langzeitbelichtung, depth of field, profondeur de champ,
        profundidad de campo, ~scharfentiefe, ~tiefenscharfe, bokeh, sur le vif, shallow focus,
        @kodak, kodachrome, ektachrome, portra, ektar, velvia, provia, superia, cinestill, ilford,
        tri x, hp5, @fujifilm, @hasselblad, @leica, @mamiya, phase one, arri alexa, red komodo,
        medium format, large format, mittelformat, grossformat, moyen format, formato medio,
        packshot
        """,
    ),
    (
        REALISTIC,
        MEDIUM,
        """
        realist*, realism*, hyperreal*, hiperreal*, ultra realistic, ultrarealistic, lifelike,
        true to life, real life, candid, documentary, documentaire, documental, dokumentarisch*,
        reportage, reportaje, ~aufnahme, ~aufnahmen, schnappschuss, snapshot, shot with,
        taken with, captured with, captured on, telephoto, teleobjectif, teleobjetivo,
        teleobjektiv, softbox, mirrorless, shutter speed, aperture, cinematic still, film still,
        movie still, cinematography, analog film, analogue film, paparazzi, dashcam, cctv,
        @canon, @nikon, @pentax, @olympus, @lumix, @gopro, @polaroid, @instax, lomography,
        disposable camera, @zeiss, prise de vue, drone shot, drone photo, studio portrait,
        studio shot, fashion shoot, hero shot, portrait mode, real people
        """,
    ),
    (
        REALISTIC,
        FAIR,
        """
        natural light, available light, lumiere naturelle, luz natural, naturliches licht,
        natural lighting, @lens, @objektiv, @objectif, wide angle, grand angle, gran angular,
        weitwinkel, fisheye, tilt shift, @macro, analog, analogue, analogica, analogico,
        film grain, @drone, @dron, luftbild, footage, b roll, @webcam, @editorial, instantane,
        cliche, film noir, @iphone, @dji, toma aerea, ring light, rembrandt lighting, blende,
        belichtungszeit, ugc
        """,
    ),
    (
        REALISTIC,
        WEAK,
        """
        close up, closeup, aerial view, aerial shot, primer plano, gros plan, real estate,
        real world, hdr, uhd, exposure, cinematic lighting, studio quality, studio lighting,
        double exposure, @commercial, black and white, noir et blanc, blanco y negro,
        schwarzweiss, monochrome, sharp focus
        """,
    ),
    (
        REALISTIC,
        0.75,
        """
        cinematic, cinematique, cinematografico, cinematisch, filmisch
        """,
    ),
    (
        REALISTIC,
        HINT,
        """
        @film, @studio, golden hour, blue hour, grain, rim light, backlit, high resolution
        """,
    ),
    # --- Painting and drawing media --------------------------------------------------------------
    (
        ARTISTIC,
        STRONG,
        """
        painting, oil painting, acrylic painting, digital painting, matte painting,
        oil on canvas, huile sur toile, oleo sobre lienzo, painterly, impasto, gouache, tempera,
        fresco, watercolor, watercolour, acuarela, acquerello, peinture, pintura, oleo,
        ~malerei, ~gemalde, olbild, acrylbild, wasserfarben, pittura, dipinto, drawing,
        hand drawn, sketch, line art, lineart, pen and ink, ink wash, sumi e, dessin, croquis,
        esquisse, dibujo, boceto, ~zeichnung, ~zeichnungen, ~skizze, handgezeichnet*,
        illustrat*, ilustra*, linework, line work, aquarell*, ascii art, lavis,
        images de synthese, arte pixel
        """,
    ),
    (
        ARTISTIC,
        FIRM,
        """
        sketched, charcoal, fusain, carboncillo, doodle, watercolors, gezeichnet*, dibujado,
        dibujada, chalk art, pastel drawing, flat colors, flat colours, flat color, flat colour,
        needle felted, amigurumi, rubber hose, spider verse, spiderverse, minecraft,
        polymer clay, rotoscope, rotoscoped
        """,
    ),
    (
        ARTISTIC,
        MEDIUM,
        """
        painted, pinte, pintado, pintada, gemalt*, dessine*, hand painted, mural, peint, peinte,
        @pencil, @graphite, @crayon, @lapiz, @bleistift, @tusche, brushstrokes, brush strokes,
        scribble, @acrylic, @acrilico, @acryl, @buntstift, @encre, @glitch, @diorama, @felted,
        @crochet, bd, album jeunesse, animado, zeichentrick*, comic*, manga*, the simpsons,
        south park, blackletter, storybook, picture book, children s book, kinderbuch,
        libro infantil
        """,
    ),
    (
        ARTISTIC,
        FAIR,
        """
        @ink, @tinta, @pastel, @pastell, tableau, cuadro, @lienzo, @canvas, @toile, @leinwand,
        @pinceau, @pincel, @pinsel, @chalk, @kohle, drawn
        """,
    ),
    # --- Animation, comics, 3D and digital art ---------------------------------------------------
    (
        ARTISTIC,
        STRONG,
        """
        anime, manga, manhwa, webtoon, chibi, cartoon*, caricatur*, karikatur, comic, comics,
        comic book, comic strip, bande dessinee, historieta, dessin anime, dibujos animados,
        zeichentrick, graphic novel, cel shaded, cel shading, ghibli, studio ghibli,
        digital art, concept art, arte digital, art numerique, digitale kunst, konzeptkunst,
        arte conceptual, art conceptuel, artstation, deviantart, game art, 3d render,
        3d rendering, rendu 3d, render 3d, blender render, blender 3d, octane render,
        unreal engine, cinema 4d, c4d, low poly, lowpoly, voxel, claymation, stop motion,
        plasticine, pixel art, pixelart, pixelkunst, vector, vectoriel, vectorial, vektor*,
        clipart, clip art, flat design, flat illustration
        """,
    ),
    (
        ARTISTIC,
        FIRM,
        """
        animated, animation, animacion, anime style, isometri*, motion graphics, 2d,
        whiteboard animation, explainer animation, animada, octane, pixar, disney, dreamworks,
        3d model, cgi, pixelated, kawaii, toon, cartoonish, flaches design, design plat
        """,
    ),
    (
        ARTISTIC,
        MEDIUM,
        """
        3d, render, rendered, rendering, rendu, renderizado, @sticker, @emoji, @icon, @pixel,
        stylized, stilisiert*, stylise*, estilizad*, artwork, oeuvre d art, kunstwerk,
        obra de arte, halftone, cg, retro game, video game, poster style, poster art,
        style affiche, estilo cartel, plakatstil
        """,
    ),
    # --- Movements, printmaking and crafts -------------------------------------------------------
    (
        ARTISTIC,
        STRONG,
        """
        art nouveau, art deco, pop art, impressionis*, impressionnis*, impresionis*,
        expressionis*, expresionis*, cubis*, kubis*, ukiyo, woodblock, woodcut, linocut,
        holzschnitt, kupferstich, xilografia, stained glass, vitrail, vitral, buntglas,
        risograph, street art, folk art, naive art, zentangle, abstract art
        """,
    ),
    (
        ARTISTIC,
        FIRM,
        """
        surrealis*, abstract*, abstrait*, abstrakt*, engraving, etching, lithograph*,
        screen print, screenprint, silkscreen, gravure, estampe, grabado, radierung, mosaic,
        mosaique, mosaico, mosaik, tapestry, embroidery, papercut, paper cut, papercraft,
        paper craft, collage, graffiti, synthwave, vaporwave, outrun, art brut
        """,
    ),
    (
        ARTISTIC,
        MEDIUM,
        """
        surreal, surreel, psychedel*, psicodel*, baroque, barroco, barock, renaissance,
        renacimiento, rococo, bauhaus, memphis design, origami, mandala, artisti*,
        kunstlerisch*, whimsical
        """,
    ),
    (
        ARTISTIC,
        FAIR,
        """
        fantasy, fantasia, fantastique, folk, chiaroscuro, @figurine, in the style of,
        dans le style de, a la maniere de, al estilo de, im stil von, im stile von, fairy tale,
        conte de fees, cuento de hadas, marchen, illustrative
        """,
    ),
    (
        ARTISTIC,
        WEAK,
        """
        art, arte, kunst, dreamy, geometri*, cyberpunk, steampunk, graphic, graphique, grafico
        """,
    ),
    (
        ARTISTIC,
        0.75,
        """
        dragon, drache, unicorn, licorne, unicornio, einhorn, wizard, sorcier, fairy, hada,
        mermaid, sirena, elf, elfe, goblin, phoenix, griffin
        """,
    ),
    (
        ARTISTIC,
        HINT,
        """
        retro, vintage poster, cute
        """,
    ),
    # --- Painters, illustrators and animators (an artistic style); photographers -----------------
    (
        ARTISTIC,
        FIRM,
        """
        van gogh, monet, picasso, rembrandt, vermeer, da vinci, michelangelo, caravaggio, klimt,
        mucha, hokusai, hiroshige, dali, magritte, kandinsky, mondrian, matisse, cezanne,
        renoir, seurat, gauguin, munch, j m w turner, william turner, john constable,
        edward hopper, norman rockwell, warhol, lichtenstein, basquiat, keith haring, banksy,
        kusama, frida kahlo, kahlo, diego rivera, botticelli, hieronymus bosch, bruegel, goya,
        velazquez, el greco, durer, schiele, chagall, escher, keeffe, pollock, rothko, hockney,
        miyazaki, shinkai, moebius, toriyama, tezuka, junji ito, herge, tintin, tim burton,
        dr seuss, beatrix potter, quentin blake, maurice sendak, rutkowski, artgerm, beeple,
        bob ross, caspar david friedrich, studio trigger, kyoto animation, mignola, frazetta,
        sempe, uderzo, asterix
        """,
    ),
    (
        REALISTIC,
        FIRM,
        """
        ansel adams, annie leibovitz, leibovitz, steve mccurry, cartier bresson, helmut newton,
        vivian maier, salgado, richard avedon, avedon, irving penn, dorothea lange, robert capa,
        diane arbus, peter lindbergh, gregory crewdson, martin parr, william eggleston,
        saul leiter, fan ho, magnum photos
        """,
    ),
    # --- Text to render: the objects that carry words and the verbs that introduce them ----------
    (
        TEXT,
        STRONG,
        """
        logo*, wordmark, infographi*, infograf*, typograph*, typograf*, tipograf*, lettering,
        hand lettered, hand lettering, lettrage, rotulacion, headline, gros titre, schlagzeile,
        titular de periodico, slogan, eslogan, tagline, caption, poster, affich*, afich*,
        cartel, carteles, ~plakat, ~plakate, signage, signboard, neon sign, street sign,
        road sign, shop sign, store sign, stop sign, traffic sign, enseigne, pancart*, ecriteau,
        letrero, rotulo, billboard, valla publicitaria, leuchtreklame, diagram*, flowchart,
        flow chart, bar chart, pie chart, line chart, mind map, menu, speisekarte, price list,
        book cover, album cover, magazine cover, record sleeve, buchcover, buchumschlag,
        titelseite, couverture de livre, couverture du livre, couverture de magazine,
        couverture d album, portada de libro, portada de revista, title card, quote card,
        business card, carte de visite, tarjeta de visita, visitenkarte, youtube thumbnail,
        big text, bold text, large text, with the words, with the text, the words,
        avec le texte, avec les mots, con el texto, con las palabras, mit dem text,
        mit den worten, front page, word art, word cloud, ~schrift, schriftart, schriftzug,
        ~schild, ~schilder, speech bubble, name tag, price tag, product label, chalkboard menu,
        menu board, presentation slide, landing page, placard, letterhead, banner ad,
        lower third, title screen, title sequence, opening title, end card, gift card,
        with measurements, with dimensions, plakatwand, reklametafel, chyron, news ticker
        """,
    ),
    (
        TEXT,
        FIRM,
        """
        sign, signs, panneau, panneaux, wegweiser, signpost, label*, etiquet*, etikett*,
        anotado, beschrift*, rotulado, text, texte, texto, texts, the word, le mot, les mots,
        la palabra, las palabras, das wort, font, fonts, title, titre, titulo, titel, titled,
        intitul*, titulad*, betitelt*, mit dem titel, subtitle, subtitles, sous titre,
        sous titres, subtitulo, subtitulos, untertitel, spelling, spells, spelled, spelt,
        that says, which says, that reads, which reads, qui dit, que dice, que pone,
        auf dem steht, auf der steht, calligraph*, caligraf*, kalligraf*, kalligraph*,
        thumbnail, flyer, flyers, brochure, broschure, folleto, leaflet, depliant, pamphlet,
        newsletter, timeline, zeitleiste, frise chronologique, linea de tiempo, certificate,
        certificat, certificado, zertifikat, banner, banniere, banderole, pancarta, meme,
        cover design, cover art, portada, birthday card, greeting card, recipe card,
        wedding invitation, carte d anniversaire, carte de voeux, tarjeta de cumpleanos,
        tarjeta de felicitacion, geburtstagskarte, grusskarte, glueckwunschkarte,
        packaging design, package design, label design, menu design, word balloon, web banner,
        scoreboard, that say, which say, que diga, con la frase, avec la phrase, mit dem spruch,
        annot*, callouts, engraved with, embroidered with, emblazoned, inscribed,
        motivational quote, sans serif, serif, serif font, weather map, weather forecast,
        broadcast graphic, news graphic, tv graphic
        """,
    ),
    (
        TEXT,
        MEDIUM,
        """
        says, saying, sagt, lautet, written, ecrit, ecrite, escrito, escrita, geschrieben,
        handwritten, manuscrite, handgeschrieben*, words, wording, mots, palabras, worte,
        worter, announcing, announces, announcement, annoncant, annonce, anunciando,
        ankundigung, quote, zitat, chart, graphique de donnees, indiqu*, indicad*, senalad*,
        eingezeichnet*, invitation, invitacion, einladung, packaging, emballage, verpackung,
        social media post, instagram post, user interface, app screen, web page, webpage,
        powerpoint, license plate, licence plate, plaque d immatriculation, nummernschild, lema,
        motto, devise, printed with, stamped with, spruch, frase, coupon, voucher, hashtag,
        sticky note, post it, qui indique, que indica, indicando, marquee
        """,
    ),
    (
        TEXT,
        FAIR,
        """
        reads, lettres, letters, letras, buchstaben, advertisement, publicite, anuncio, werbung,
        website, chalkboard, kreidetafel, whiteboard, ui, dashboard, ticket, receipt, calendar,
        postcard, carte postale, postkarte, citation, cita, legende, leyenda, schema, esquema,
        script, tableau noir, blueprint, phrase, credits, template, stationery
        """,
    ),
    (
        TEXT,
        WEAK,
        """
        graph, cover, newspaper, journal, periodico, zeitung, magazine, revista, tarjeta,
        blackboard, pizarra, tafel, dit, youtube, mockup, postal, map, carte du monde, mapa,
        landkarte, weltkarte
        """,
    ),
    (
        TEXT,
        HINT,
        """
        reading, dice, steht
        """,
    ),
    # --- Words that look like cues but are not ---------------------------------------------------
    (
        NEUTRAL,
        0.0,
        """
        sign language, langue des signes, lengua de signos, panneau solaire, panneaux solaires,
        appareil photo, camera, camara, kamera, tableau de bord, horse drawn, reading glasses,
        3d printed, 3d printing, interior design, zeitschrift, auszeichnung, aufzeichnung,
        art gallery, art museum, art supplies, art class, photo booth, photo frame,
        picture frame, blender, fuji, mount fuji, golden gate, title belt, menu bar,
        label maker, peace sign, dollar sign, plus sign, minus sign, sign of, signs of,
        star sign, zodiac sign, vital signs, text free, fotomontage, photomontage, mount olympus
        """,
    ),
)


@dataclass(frozen=True)
class Entry:
    """One lexicon phrase: what it suggests and how strongly (a NEUTRAL entry only blocks)."""

    phrase: str
    category: str
    weight: float
    style_only: bool = False


@dataclass(frozen=True)
class Lexicon:
    """The compiled vocabulary: exact phrases by first word, word stems and compound heads."""

    phrases: dict[str, tuple[tuple[tuple[str, ...], Entry], ...]]
    stems: tuple[tuple[str, Entry], ...]
    compound_heads: tuple[tuple[str, Entry], ...]
    words: frozenset[str]


def _compile(groups: tuple[tuple[str, float, str], ...]) -> Lexicon:
    """Index the groups; the strongest entry wins when a phrase is listed twice."""
    exact: dict[tuple[str, ...], Entry] = {}
    stems: dict[str, Entry] = {}
    heads: dict[str, Entry] = {}

    def keep(table: dict, key: object, entry: Entry) -> None:
        if key not in table or entry.weight > table[key].weight:
            table[key] = entry

    for category, weight, phrases in groups:
        for raw in phrases.split(","):
            phrase = " ".join(raw.split())
            if not phrase:
                continue
            style_only = phrase.startswith("@")
            phrase = phrase.removeprefix("@")
            if phrase.endswith("*"):
                keep(stems, phrase[:-1], Entry(phrase[:-1], category, weight))
                continue
            if phrase.startswith("~"):
                phrase = phrase[1:]
                keep(heads, phrase, Entry(phrase, category, weight))
            keep(exact, tuple(phrase.split()), Entry(phrase, category, weight, style_only))

    by_first: dict[str, list[tuple[tuple[str, ...], Entry]]] = {}
    for words, entry in exact.items():
        by_first.setdefault(words[0], []).append((words, entry))
    return Lexicon(
        # Longest phrase first, so "poster style" is read before "poster".
        phrases={
            first: tuple(sorted(options, key=lambda option: -len(option[0])))
            for first, options in by_first.items()
        },
        stems=tuple(sorted(stems.items(), key=lambda item: -len(item[0]))),
        compound_heads=tuple(sorted(heads.items(), key=lambda item: -len(item[0]))),
        words=frozenset(word for words in exact for word in words),
    )


LEXICON = _compile(_GROUPS)
