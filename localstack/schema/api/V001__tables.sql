-- API database schema (DESIGN §9), as production has it.
-- Plain SQL (no psql meta-commands); applied in lexical file order by localstack/up and testkit.

-- The copy step reaches the catalog through postgres_fdw.
CREATE EXTENSION IF NOT EXISTS postgres_fdw;

-- image ----------------------------------------------------------------------------------
CREATE SEQUENCE image_id_seq AS integer;

CREATE TABLE image (
    id                      integer NOT NULL DEFAULT nextval('image_id_seq'::regclass),
    created_on              timestamptz NOT NULL,
    updated_on              timestamptz NOT NULL,
    identifier              uuid NOT NULL,
    provider                varchar(80),
    source                  varchar(80),
    foreign_identifier      text,
    foreign_landing_url     text,
    url                     text,
    thumbnail               text,
    width                   integer,
    height                  integer,
    filesize                integer,
    license                 varchar(50) NOT NULL,
    license_version         varchar(25),
    creator                 text,
    creator_url             text,
    title                   text,
    last_synced_with_source timestamptz,
    removed_from_source     boolean NOT NULL,
    meta_data               jsonb,
    view_count              integer DEFAULT 0,
    tags                    jsonb,
    watermarked             boolean,
    filetype                varchar(80),
    standardized_popularity double precision,
    category                varchar(80),
    CONSTRAINT image_pkey PRIMARY KEY (id),
    CONSTRAINT image_identifier_key UNIQUE (identifier),
    CONSTRAINT image_url_key UNIQUE (url),
    CONSTRAINT image_foreign_identifier_provider_uniq UNIQUE (foreign_identifier, provider)
);
ALTER SEQUENCE image_id_seq OWNED BY image.id;

CREATE INDEX image_category_idx ON image (category);
CREATE INDEX image_category_like_idx ON image (category varchar_pattern_ops);
CREATE INDEX image_foreign_identifier_idx ON image (foreign_identifier);
CREATE INDEX image_foreign_identifier_like_idx ON image (foreign_identifier varchar_pattern_ops);
CREATE INDEX image_provider_idx ON image (provider);
CREATE INDEX image_provider_like_idx ON image (provider varchar_pattern_ops);
CREATE INDEX image_source_idx ON image (source);
CREATE INDEX image_source_like_idx ON image (source varchar_pattern_ops);
CREATE INDEX image_url_like_idx ON image (url varchar_pattern_ops);
CREATE INDEX image_last_synced_with_source_idx ON image (last_synced_with_source);

-- audio ----------------------------------------------------------------------------------
CREATE SEQUENCE audio_id_seq AS integer;

CREATE TABLE audio (
    id                           integer NOT NULL DEFAULT nextval('audio_id_seq'::regclass),
    created_on                   timestamptz NOT NULL,
    updated_on                   timestamptz NOT NULL,
    identifier                   uuid NOT NULL,
    provider                     varchar(80),
    source                       varchar(80),
    foreign_identifier           text,
    foreign_landing_url          text,
    url                          text,
    thumbnail                    text,
    filesize                     integer,
    license                      varchar(50) NOT NULL,
    license_version              varchar(25),
    creator                      text,
    creator_url                  text,
    title                        text,
    last_synced_with_source      timestamptz,
    removed_from_source          boolean NOT NULL,
    meta_data                    jsonb,
    view_count                   integer DEFAULT 0,
    tags                         jsonb,
    watermarked                  boolean,
    filetype                     varchar(80),
    standardized_popularity      double precision,
    category                     varchar(80),
    audio_set_position           integer,
    genres                       varchar(80)[],
    duration                     integer,
    bit_rate                     integer,
    sample_rate                  integer,
    alt_files                    jsonb,
    audio_set_foreign_identifier text,
    CONSTRAINT audio_pkey PRIMARY KEY (id),
    CONSTRAINT audio_identifier_key UNIQUE (identifier),
    CONSTRAINT audio_url_key UNIQUE (url),
    CONSTRAINT audio_foreign_identifier_provider_uniq UNIQUE (foreign_identifier, provider)
);
ALTER SEQUENCE audio_id_seq OWNED BY audio.id;

CREATE INDEX audio_category_idx ON audio (category);
CREATE INDEX audio_category_like_idx ON audio (category varchar_pattern_ops);
CREATE INDEX audio_foreign_identifier_idx ON audio (foreign_identifier);
CREATE INDEX audio_foreign_identifier_like_idx ON audio (foreign_identifier varchar_pattern_ops);
CREATE INDEX audio_provider_idx ON audio (provider);
CREATE INDEX audio_provider_like_idx ON audio (provider varchar_pattern_ops);
CREATE INDEX audio_source_idx ON audio (source);
CREATE INDEX audio_source_like_idx ON audio (source varchar_pattern_ops);
CREATE INDEX audio_url_like_idx ON audio (url varchar_pattern_ops);
CREATE INDEX audio_last_synced_with_source_idx ON audio (last_synced_with_source);

-- audioset (filled from the catalog's audioset_view) -------------------------------------
CREATE TABLE audioset (
    foreign_identifier  text,
    title               text,
    foreign_landing_url text,
    creator             text,
    creator_url         text,
    thumbnail           text,
    provider            varchar(80),
    url                 text,
    filesize            integer,
    filetype            varchar(80),
    created_on          timestamptz,
    updated_on          timestamptz,
    CONSTRAINT audioset_foreign_identifier_provider_uniq UNIQUE (foreign_identifier, provider)
);

-- Deleted and mature rows: no foreign key, these rows outlive the media row -------------
CREATE TABLE api_deletedimage (
    identifier uuid NOT NULL,
    created_on timestamptz NOT NULL DEFAULT now(),
    updated_on timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_deletedimage_pkey PRIMARY KEY (identifier)
);

CREATE TABLE api_deletedaudio (
    identifier uuid NOT NULL,
    created_on timestamptz NOT NULL DEFAULT now(),
    updated_on timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_deletedaudio_pkey PRIMARY KEY (identifier)
);

CREATE TABLE api_matureimage (
    identifier uuid NOT NULL,
    created_on timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_matureimage_pkey PRIMARY KEY (identifier)
);

CREATE TABLE api_matureaudio (
    identifier uuid NOT NULL,
    created_on timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_matureaudio_pkey PRIMARY KEY (identifier)
);

-- Moderation decisions: foreign keys onto the media tables' identifier, which promotion
-- re-points after deleting orphans. Deferrable, as Django creates them.
CREATE TABLE api_imagedecision (
    id            bigint GENERATED BY DEFAULT AS IDENTITY,
    created_on    timestamptz NOT NULL DEFAULT now(),
    action        varchar(32) NOT NULL,
    notes         text,
    media_obj_id  uuid NOT NULL,
    CONSTRAINT api_imagedecision_pkey PRIMARY KEY (id),
    CONSTRAINT api_imagedecision_media_obj_id_fk_image_identifier
        FOREIGN KEY (media_obj_id) REFERENCES image (identifier) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX api_imagedecision_media_obj_id_idx ON api_imagedecision (media_obj_id);

CREATE TABLE api_audiodecision (
    id            bigint GENERATED BY DEFAULT AS IDENTITY,
    created_on    timestamptz NOT NULL DEFAULT now(),
    action        varchar(32) NOT NULL,
    notes         text,
    media_obj_id  uuid NOT NULL,
    CONSTRAINT api_audiodecision_pkey PRIMARY KEY (id),
    CONSTRAINT api_audiodecision_media_obj_id_fk_audio_identifier
        FOREIGN KEY (media_obj_id) REFERENCES audio (identifier) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX api_audiodecision_media_obj_id_idx ON api_audiodecision (media_obj_id);
