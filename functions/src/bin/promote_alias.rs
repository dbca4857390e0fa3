//! Step 10: moves alias `<media>` or `<media>-filtered` to the new index in one `_aliases` call.

#![recursion_limit = "256"]

use refresh_functions::steps::{search, PromoteAliasInput};
use refresh_functions::{run, Context};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(|ctx: Arc<Context>, input: PromoteAliasInput| async move {
        input.check()?;
        let environment = input.params.as_ref().map(|p| p.environment);
        let client = search(&ctx, environment).await?;
        let promotion =
            refresh_core::es::promote_alias(&client, &input.alias, &input.index).await?;
        Ok(promotion)
    })
    .await
}
