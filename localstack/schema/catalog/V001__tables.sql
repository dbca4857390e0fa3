-- Catalog (upstream) database schema: the same core media columns as the API tables, plus
-- catalog-only columns (ingestion_type, audio_set) that a refresh must NOT copy, and
-- audioset_view. The catalog has no integer id: the API assigns ids at copy time.
-- Plain SQL (no psql meta-commands); applied in lexical file order by localstack/up and testkit.

CREATE TABLE image (
    identifier              uuid NOT NULL DEFAULT gen_random_uuid(),
    created_on              timestamptz NOT NULL,
    updated_on              timestamptz NOT NULL,
    ingestion_type          varchar(80),
    provider                varchar(80),
    source                  varchar(80),
    foreign_identifier      text,
    foreign_landing_url     text,
    url                     text NOT NULL,
    thumbnail               text,
    width                   integer,
    height                  integer,
    filesize                integer,
    license                 varchar(50) NOT NULL,
    license_version         varchar(25),
    creator                 text,
    creator_url             text,
    title                   text,
    meta_data               jsonb,
    tags                    jsonb,
    watermarked             boolean,
    last_synced_with_source timestamptz,
    removed_from_source     boolean NOT NULL,
    filetype                varchar(80),
    category                varchar(80),
    standardized_popularity double precision,
    CONSTRAINT image_pkey PRIMARY KEY (identifier),
    CONSTRAINT image_url_key UNIQUE (url),
    CONSTRAINT image_provider_fid_key UNIQUE (provider, foreign_identifier)
);
CREATE INDEX image_provider_idx ON image (provider);
CREATE INDEX image_last_synced_with_source_idx ON image (last_synced_with_source);

CREATE TABLE audio (
    identifier                   uuid NOT NULL DEFAULT gen_random_uuid(),
    created_on                   timestamptz NOT NULL,
    updated_on                   timestamptz NOT NULL,
    ingestion_type               varchar(80),
    provider                     varchar(80),
    source                       varchar(80),
    foreign_identifier           text,
    foreign_landing_url          text,
    url                          text NOT NULL,
    thumbnail                    text,
    filetype                     varchar(80),
    duration                     integer,
    bit_rate                     integer,
    sample_rate                  integer,
    category                     varchar(80),
    genres                       varchar(80)[],
    audio_set                    jsonb,
    audio_set_position           integer,
    audio_set_foreign_identifier text,
    alt_files                    jsonb,
    filesize                     integer,
    license                      varchar(50) NOT NULL,
    license_version              varchar(25),
    creator                      text,
    creator_url                  text,
    title                        text,
    meta_data                    jsonb,
    tags                         jsonb,
    watermarked                  boolean,
    last_synced_with_source      timestamptz,
    removed_from_source          boolean NOT NULL,
    standardized_popularity      double precision,
    CONSTRAINT audio_pkey PRIMARY KEY (identifier),
    CONSTRAINT audio_url_key UNIQUE (url),
    CONSTRAINT audio_provider_fid_key UNIQUE (provider, foreign_identifier)
);
CREATE INDEX audio_provider_idx ON audio (provider);
CREATE INDEX audio_last_synced_with_source_idx ON audio (last_synced_with_source);

-- One row per (foreign_identifier, provider) audio set, as the API's audioset table wants.
CREATE VIEW audioset_view AS
SELECT DISTINCT ON (audio_set ->> 'foreign_identifier', provider)
    (audio_set ->> 'foreign_identifier')::text     AS foreign_identifier,
    (audio_set ->> 'title')::text                  AS title,
    (audio_set ->> 'foreign_landing_url')::text    AS foreign_landing_url,
    (audio_set ->> 'creator')::text                AS creator,
    (audio_set ->> 'creator_url')::text            AS creator_url,
    (audio_set ->> 'thumbnail')::text              AS thumbnail,
    provider,
    (audio_set ->> 'url')::text                    AS url,
    CASE WHEN jsonb_typeof(audio_set -> 'filesize') = 'number'
         THEN (audio_set ->> 'filesize')::integer END AS filesize,
    (audio_set ->> 'filetype')::varchar(80)        AS filetype,
    created_on,
    updated_on
FROM audio
WHERE audio_set IS NOT NULL
  AND audio_set ->> 'foreign_identifier' IS NOT NULL
ORDER BY audio_set ->> 'foreign_identifier', provider, updated_on DESC;
