.PHONY: run test lint fuzz kafka-start kafka-stop sample schemas baseline help

help:        ## list the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

run:         ## set up and run the job on the embedded sample (no broker needed)
	scripts/run.sh

test:        ## set up and pass the whole test suite, Kafka integration tests included
	scripts/test.sh

lint:        ## the static checks scripts/test.sh runs first: ruff and mypy (docs/development.md)
	.venv/bin/ruff check .
	.venv/bin/mypy

fuzz:        ## a long fuzzing campaign (about 74,000 examples; COACH_FUZZ_SCALE scales it), niced
	COACH_FUZZ_PROFILE=campaign nice -n 10 .venv/bin/python -m pytest tests/fuzz -q -p no:cacheprovider --timeout 3600

kafka-start: ## start the development broker on 127.0.0.1:9092
	scripts/kafka.sh start

kafka-stop:  ## stop it
	scripts/kafka.sh stop

sample:      ## rebuild the bundled sample from ../shared/data/star
	scripts/make_sample.sh

schemas:     ## re-export the JSON Schemas of the topic contracts
	.venv/bin/coach schemas export

baseline:    ## retrain the baseline scorer and update the registry
	.venv/bin/coach baseline train
