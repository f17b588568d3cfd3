"""What each task's trained model answers, from a model package (see seqnlp.packages): one predictor class
per task module, batched, with jax and NumPy alone.

Each class names the files its task's package needs besides the exported model (``write_assets``, run by
the package stage in a checkout) and answers from a package folder, wherever it is.
"""

import shutil

import numpy as np

from seqnlp import layout, trained
from seqnlp.artifacts import read_json, write_json
from seqnlp.errors import UserError
from seqnlp.tasks import ner, questions, shakespeare, topics

ASSETS = "assets"


def _texts(texts, what="text"):
    """``texts`` as a list of strings, or a one-line error naming the first bad one."""
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise UserError(f"expected a list of {what}s, got {type(texts).__name__}")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise UserError(f"{what} {index} is a {type(text).__name__}, not a string")
        if not text.strip():
            raise UserError(f"{what} {index} is empty")
    return list(texts)


class TopicClassifier:
    """AG News topics: ``predict(texts)`` -> [{"label", "probabilities"}] per text."""

    task_module = "topics"
    usage = 'model.predict(["Stocks fell after the central bank raised rates"])'

    @staticmethod
    def limits(params):
        return ("English news text (title and description), cleaned of HTML entities and tags as in training; "
                f"labels {', '.join(topics.LABELS)}; {params['tokenize']['vocab_size']} subwords built on the "
                "training split.")

    @staticmethod
    def write_assets(task_name, params, out):
        shutil.copyfile(layout.tokens(task_name) / topics.VOCAB_FILE, out / topics.VOCAB_FILE)

    @staticmethod
    def answers(assets):
        return {"labels": list(topics.LABELS)}

    def __init__(self, package):
        self.package, self.labels = package, list(topics.LABELS)
        self._model = package.model()
        self._batch_size = package.params["evaluate"]["batch_size"]

    def predict(self, texts):
        texts = _texts(texts)
        encoded = topics.encode([topics.clean_text(text) for text in texts], self.package.assets)
        for index, ids in enumerate(encoded):
            if len(ids) == 0:
                raise UserError(f"text {index} has no tokens after cleaning")
        probabilities = np.exp(topics.predict_log_probs(self._model, encoded, self._batch_size,
                                                        topics.length_step_for(self.package.params["model"])))
        return [{"label": self.labels[int(row.argmax())], "probabilities": dict(zip(self.labels, map(float, row)))}
                for row in probabilities]


class TextGenerator:
    """Shakespeare's character model: ``generate(prefix, n, length, temperature, seed)`` -> n samples, and
    ``log_perplexity(lines)`` -> nats per character of each line (its end included, as evaluate counts).

    Text is normalised as the training lines were (printable ASCII, lower-cased when the corpus was);
    ``prompt(prefix)`` shows the normalised prefix and what was changed.
    """

    task_module = "shakespeare"
    ALPHABET_FILE, SCORER = "alphabet.json", "scorer"
    usage = ('model.generate("to be", n=3, length=100, temperature=0.8, seed=1)\n'
             'model.log_perplexity(["to be, or not to be", "what light through yonder window breaks"])')

    @staticmethod
    def limits(params):
        return (f"Shakespeare's lines of at most {params['filter']['max_length']} characters, one at a time; text "
                "is mapped to printable ASCII" + (" and lower-cased" if params["filter"]["lowercase"] else "")
                + " as the training lines were, and prompt characters never seen in training are dropped, with a "
                  "note. Generation samples one text after another.")

    @staticmethod
    def write_assets(task_name, params, out):
        """The training alphabet, and the model in eval mode (whole lines in, every position's log-probabilities
        out) beside the export's one-character step, for scoring many lines at once."""
        from seqnlp.stages.evaluate import load_trained

        alphabet = shakespeare.training_alphabet(layout.tokens(task_name))
        write_json(out / TextGenerator.ALPHABET_FILE, [int(token) for token in alphabet])
        (out / TextGenerator.SCORER).mkdir()
        trained.export(load_trained(task_name, shakespeare, params), [("batch, length", np.int32)], [],
                       trained.trained_record(task_name, params), out / TextGenerator.SCORER)

    @staticmethod
    def answers(assets):
        alphabet = read_json(assets / TextGenerator.ALPHABET_FILE)
        return {"alphabet": "".join(chr(token) for token in alphabet if token != shakespeare.EOS)}

    def __init__(self, package):
        self.package = package
        alphabet = np.array(read_json(package.assets / self.ALPHABET_FILE), np.int32)
        self._lowercase = package.params["filter"]["lowercase"]
        self._generator = shakespeare.Generator(package.model(), alphabet, self._lowercase)
        self._scorer = None

    def prompt(self, prefix):
        if not isinstance(prefix, str):
            raise UserError(f"the prefix is a {type(prefix).__name__}, not a string")
        return self._generator.prompt(prefix)

    def generate(self, prefix="", n=1, length=200, temperature=1.0, seed=0):
        self.prompt(prefix)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise UserError(f"n must be a positive whole number, got {n!r}")
        return [self._generator.sample(prefix, length, temperature, seed + index) for index in range(n)]

    def log_perplexity(self, lines):
        sequences = []
        for index, line in enumerate(_texts(lines, what="line")):
            normalised = shakespeare.normalise(line.strip(), self._lowercase)[0].strip()
            if not normalised or "\n" in normalised:
                raise UserError(f"line {index} is {'empty' if not normalised else 'more than one line'} "
                                "after normalisation")
            sequences.append(np.array(shakespeare.line_to_ids(normalised), np.int32))
        if self._scorer is None:
            self._scorer = self.package.model(self.package.assets / self.SCORER)
        totals = shakespeare.score_lines(self._scorer, sequences, self.package.params["evaluate"]["batch_size"],
                                         "scoring")
        return [float(value) for value in -totals["log_prob"] / totals["characters"]]


def _word_offsets(text, words):
    """(start, end) of each word in ``text``: the words were found in order, with only spaces between."""
    offsets, cursor = [], 0
    for word in words:
        start = text.index(word, cursor)
        offsets.append((start, start + len(word)))
        cursor = start + len(word)
    return offsets


class EntityTagger:
    """Named entities: ``tag(texts)`` -> [{"tokens", "tags", "entities": [{"type", "text", "start", "end"}]}],
    the offsets counting characters of the text."""

    task_module = "ner"
    usage = 'model.tag(["Mr. Smith flew from Paris to Berlin on Monday."])'

    @staticmethod
    def limits(params):
        corpus = params["download"]["corpus"]
        return (f"English sentences, split into tokens as the {corpus} corpus is, and {corpus}'s entity types "
                "(IOB2 tags); a word unseen in training is read from its characters.")

    @staticmethod
    def write_assets(task_name, params, out):
        shutil.copyfile(layout.tokens(task_name) / ner.VOCAB_FILE, out / ner.VOCAB_FILE)

    @staticmethod
    def answers(assets):
        return {"tags": read_json(assets / ner.VOCAB_FILE)["tags"]}

    def __init__(self, package):
        self.package = package
        self._model = package.model()

    def tag(self, texts):
        texts = _texts(texts)
        tagged = ner.tag_sentences(self.package.params, self._model, self.package.assets, texts)
        results = []
        for text, (words, tags, _) in zip(texts, tagged):
            offsets = _word_offsets(text, words)
            entities = [{"type": kind, "text": text[offsets[start][0]:offsets[end - 1][1]],
                         "start": offsets[start][0], "end": offsets[end - 1][1]}
                        for kind, start, end in ner.entity_spans(tags)]
            results.append({"tokens": words, "tags": tags, "entities": entities})
        return results


class DuplicateQuestions:
    """Quora question pairs: ``judge(pairs)`` -> similarity and verdict at the validation threshold per pair,
    ``similar(question, top)`` over the package's index of training questions, and ``add(questions)`` to put
    your own questions in that index (in memory)."""

    task_module = "questions"
    INDEX = "index"
    usage = ('model.judge([("How do I learn Python?", "What is the best way to learn Python?")])\n'
             'model.similar("How can I lose weight fast?", top=5)')

    @staticmethod
    def limits(params):
        return ("English questions; a pair is a duplicate when its cosine similarity is above the threshold chosen "
                "on the validation pairs; `similar` searches the training and validation questions and those you "
                "`add`.")

    @staticmethod
    def write_assets(task_name, params, out):
        shutil.copyfile(layout.tokens(task_name) / questions.VOCAB_FILE, out / questions.VOCAB_FILE)
        (out / DuplicateQuestions.INDEX).mkdir()
        for name in (questions.INDEX_VECTORS, questions.INDEX_QUESTIONS, questions.INDEX_RECORD):
            shutil.copyfile(layout.index(task_name) / name, out / DuplicateQuestions.INDEX / name)

    @staticmethod
    def answers(assets):
        record = read_json(assets / DuplicateQuestions.INDEX / questions.INDEX_RECORD)
        return {"threshold": record["threshold"], "indexed_questions": record["questions"]}

    def __init__(self, package):
        self.package = package
        self._encoder = questions.QuestionEncoder(package.params, package.model(), package.assets)
        self.index = questions.QuestionIndex(package.assets / self.INDEX)
        self.threshold = self.index.threshold

    def judge(self, pairs):
        if isinstance(pairs, str) or not isinstance(pairs, (list, tuple)):
            raise UserError(f"expected a list of question pairs, got {type(pairs).__name__}")
        for index, pair in enumerate(pairs):
            if isinstance(pair, str) or not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise UserError(f"pair {index} is not two questions: {pair!r}"[:200])
            _texts(list(pair), what=f"pair {index}'s question")
        return questions.judge_pairs(self._encoder, self.threshold, [tuple(pair) for pair in pairs])

    def meaningful(self, question):
        """Whether ``question``'s vector means anything: a word the model knows, or character n-grams."""
        return self._encoder(_texts([question], what="question"))[2][0]

    def similar(self, question, top=5):
        [question] = _texts([question], what="question")
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise UserError(f"top must be a positive whole number, got {top!r}")
        vectors, _, _ = self._encoder([question])
        return [{"question": text, "similarity": similarity} for text, similarity in self.index.nearest(vectors[0], top)]

    def add(self, new_questions):
        """Encode ``new_questions`` and add them to this predictor's index; returns the index's size."""
        new_questions = _texts(new_questions, what="question")
        vectors, _, _ = self._encoder(new_questions)
        self.index.vectors = np.concatenate([self.index.vectors, np.asarray(vectors, np.float32)])
        self.index.questions = [*self.index.questions, *new_questions]
        return len(self.index.questions)


PREDICTORS = {predictor.task_module: predictor
              for predictor in (TopicClassifier, TextGenerator, EntityTagger, DuplicateQuestions)}
