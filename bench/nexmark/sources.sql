-- The three Nexmark streams. The harness replaces :options with the generator's settings
-- (events, event rate, ...); streams with equal settings share one event sequence.
CREATE STREAM person (
    id BIGINT, name TEXT, email_address TEXT, credit_card TEXT, city TEXT, state TEXT,
    date_time TIMESTAMP, extra TEXT,
    WATERMARK FOR date_time AS date_time - INTERVAL '4 seconds'
) WITH (connector = 'nexmark', table = 'person', :options);

CREATE STREAM auction (
    id BIGINT, item_name TEXT, description TEXT, initial_bid BIGINT, reserve BIGINT,
    date_time TIMESTAMP, expires TIMESTAMP, seller BIGINT, category BIGINT, extra TEXT,
    WATERMARK FOR date_time AS date_time - INTERVAL '4 seconds'
) WITH (connector = 'nexmark', table = 'auction', :options);

CREATE STREAM bid (
    auction BIGINT, bidder BIGINT, price BIGINT, channel TEXT, url TEXT,
    date_time TIMESTAMP, extra TEXT,
    WATERMARK FOR date_time AS date_time - INTERVAL '4 seconds'
) WITH (connector = 'nexmark', table = 'bid', :options);
